package kwire_test

import (
	"errors"
	"testing"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// withAttributes is b with attribute bits set, sealed again.
func withAttributes(b []byte, bits byte) []byte {
	b[22] |= bits
	return kwiretest.Seal(b)
}

// A transactional batch is parsed and reported as such (the agent decides whether to take it); a
// control batch is refused, as Kafka refuses one from a client, and so is a transactional batch
// without a producer id.
func TestParseTransactionalBatch(t *testing.T) {
	t.Parallel()
	m, err := kwire.ParseProduceBatch(withAttributes(kwiretest.ValueBatch(7, 2, 0, nil, "a", "b"), 1<<4), 1<<20)
	if err != nil || !m.Transactional || m.ProducerID != 7 || m.ProducerEpoch != 2 || m.Records != 2 {
		t.Fatalf("transactional batch: %+v, %v", m, err)
	}
	if m, err := kwire.ParseProduceBatch(kwiretest.ValueBatch(7, 2, 0, nil, "a"), 1<<20); err != nil || m.Transactional {
		t.Fatalf("plain batch: %+v, %v", m, err)
	}
	if _, err := kwire.ParseProduceBatch(withAttributes(kwiretest.ValueBatch(7, 2, 0, nil, "a"), 1<<5), 1<<20); !errors.Is(err, kwire.ErrBatchControl) {
		t.Fatalf("control batch: %v, want ErrBatchControl", err)
	}
	if _, err := kwire.ParseProduceBatch(withAttributes(kwiretest.ValueBatch(-1, -1, -1, nil, "a"), 1<<4), 1<<20); !errors.Is(err, kwire.ErrBatchInvalid) {
		t.Fatalf("transactional batch without a producer: %v, want ErrBatchInvalid", err)
	}
}
