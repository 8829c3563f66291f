package agent

import (
	"fmt"
	"math"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/cleaner"
	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// Kafka's message.timestamp.before.max.ms and message.timestamp.after.max.ms (KIP-937), and the
// deprecated message.timestamp.difference.max.ms they default to: on a CreateTime topic that sets
// them, a record whose timestamp lies further before or after the agent's clock refuses its batch with
// INVALID_TIMESTAMP, the record named in the record errors. Topics that set none (the default: no
// bound) are not walked again.

const (
	configTimestampBefore = "message.timestamp.before.max.ms"
	configTimestampAfter  = "message.timestamp.after.max.ms"
	configTimestampDiff   = "message.timestamp.difference.max.ms"
)

// timestampError is a batch refused for a record's timestamp; it answers INVALID_TIMESTAMP.
type timestampError struct {
	index int32
	msg   string
}

func (e *timestampError) Error() string      { return e.msg }
func (e *timestampError) Unwrap() error      { return kwire.ErrBatchTimestamp }
func (e *timestampError) recordIndex() int32 { return e.index }

// timestampBounds is t's accepted record time window around now; ok is false when t sets none.
func timestampBounds(t coord.Topic, now time.Time) (from, to int64, ok bool) {
	if t.Configs[configTimestampType] == "LogAppendTime" {
		return 0, 0, false
	}
	bound := func(name string) (int64, bool) {
		if ms, ok := configInt(t, name); ok && ms >= 0 && ms < math.MaxInt64 {
			return ms, true
		}
		if ms, ok := configInt(t, configTimestampDiff); ok && ms >= 0 && ms < math.MaxInt64 {
			return ms, true
		}
		return 0, false
	}
	before, okB := bound(configTimestampBefore)
	after, okA := bound(configTimestampAfter)
	if !okB && !okA {
		return 0, 0, false
	}
	ms := now.UnixMilli()
	from, to = math.MinInt64, math.MaxInt64
	if okB && before <= ms {
		from = ms - before
	}
	if okA && after <= math.MaxInt64-ms {
		to = ms + after
	}
	return from, to, true
}

// checkTimestamps refuses a batch (one parseBatch accepted) with a record outside t's time bounds.
func (a *Agent) checkTimestamps(t coord.Topic, batch []byte, now time.Time) error {
	from, to, ok := timestampBounds(t, now)
	if !ok {
		return nil
	}
	i, found, err := cleaner.FirstOutside(batch, from, to, a.cfg.MaxDecompressedBatchBytes)
	if err != nil {
		return fmt.Errorf("%w: %w", kwire.ErrBatchCorrupt, err)
	}
	if found {
		return &timestampError{index: i, msg: fmt.Sprintf("record %d's timestamp is outside [%d, %d], the bounds of topic %s's %s and %s",
			i, from, to, t.Name, configTimestampBefore, configTimestampAfter)}
	}
	return nil
}
