package agent

import (
	"errors"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// A topic with message.timestamp.type=LogAppendTime has the agent's clock, not the producer's, as its
// records' time, as in Kafka: on receipt, before the batch is written, the batch's attributes get the
// timestamp type bit and its max timestamp the agent's time, and its CRC (which covers both) is computed
// anew. Consumers then take the batch's max timestamp as every record's time; record bytes are
// untouched. Produce answers with that time (LogAppendTime), and the index carries it as the batch's
// max timestamp, so that retention and ListOffsets by time follow it.

// applyLogAppendTime stamps batch (validated, not yet written) with now when t asks for
// LogAppendTime, and returns the time stamped (-1 when t does not).
func applyLogAppendTime(t coord.Topic, batch []byte, meta *kwire.BatchMeta, now time.Time) int64 {
	if t.Configs[configTimestampType] != "LogAppendTime" {
		return -1
	}
	ms := now.UnixMilli()
	if !kwire.StampLogAppendTime(batch, ms) {
		return -1
	}
	meta.MaxTimestamp = ms
	return ms
}

// logAppendTimeOf corrects the max timestamp validation derived from a batch's records when the batch
// was stamped with its log append time (a forwarded batch of a LogAppendTime topic).
func logAppendTimeOf(batch []byte, meta *kwire.BatchMeta) {
	if ms, ok := kwire.LogAppendTime(batch); ok {
		meta.MaxTimestamp = ms
	}
}

func parseTimestampType(v string) (string, error) {
	if v != "CreateTime" && v != "LogAppendTime" {
		return "", errors.New("must be CreateTime or LogAppendTime")
	}
	return v, nil
}
