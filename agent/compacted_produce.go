package agent

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/cleaner"
	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// A compacted topic keeps the latest record of each key, so a record without a key has no place in it:
// Kafka's LogValidator refuses the batch with INVALID_RECORD and names the record in the response's
// record errors (Produce v8+, KIP-467). So does the agent, after the batch's own validation.

// keylessError is a batch refused for a record without a key; it answers INVALID_RECORD.
type keylessError struct {
	topic     string
	partition int32
	index     int32 // the first keyless record
}

func (e *keylessError) Error() string {
	return fmt.Sprintf("record %d has no key: %s-%d is a compacted topic, whose records need one", e.index, e.topic, e.partition)
}

func (e *keylessError) Unwrap() error { return kwire.ErrBatchInvalid }

// checkKeys refuses a batch with a record without a key when t is compacted. The batch is one
// parseBatch accepted.
func (a *Agent) checkKeys(t coord.Topic, partition int32, batch []byte) error {
	if !policyCompacts(t.Configs[configCleanupPolicy]) {
		return nil
	}
	i, found, err := cleaner.FirstKeyless(batch, a.cfg.MaxDecompressedBatchBytes)
	if err != nil {
		return fmt.Errorf("%w: %w", kwire.ErrBatchCorrupt, err)
	}
	if found {
		return &keylessError{topic: t.Name, partition: partition, index: i}
	}
	return nil
}

// answerRecordErrors adds a refused batch's record errors and message to its partition's answer.
func answerRecordErrors(sp *kmsg.ProduceResponseTopicPartition, err error) {
	ke, ok := err.(*keylessError)
	if !ok {
		return
	}
	msg := ke.Error()
	sp.ErrorMessage = &msg
	re := kmsg.NewProduceResponseTopicPartitionErrorRecord()
	re.RelativeOffset = ke.index
	re.ErrorMessage = &msg
	sp.ErrorRecords = append(sp.ErrorRecords, re)
}
