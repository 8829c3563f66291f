package kwire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A marker's control batch is what Kafka writes: franz-go's decoders read it back field for field,
// its CRC is right, and the agent's Produce validator refuses it from a client.
func TestAppendControlBatch(t *testing.T) {
	t.Parallel()
	for _, m := range []Marker{
		{BaseOffset: 41, LeaderEpoch: 3, ProducerID: 1 << 40, ProducerEpoch: 7, Commit: true, CoordinatorEpoch: 12345, Timestamp: 1_700_000_000_000},
		{BaseOffset: 0, LeaderEpoch: 0, ProducerID: 0, ProducerEpoch: 0, Commit: false, CoordinatorEpoch: -1, Timestamp: 0},
	} {
		b := AppendControlBatch([]byte("prefix"), m)
		if !bytes.HasPrefix(b, []byte("prefix")) || len(b) != len("prefix")+ControlBatchLen {
			t.Fatalf("appended %d bytes, want %d after the prefix", len(b)-len("prefix"), ControlBatchLen)
		}
		b = b[len("prefix"):]
		if err := CheckBatchFrame(b); err != nil {
			t.Fatalf("frame: %v", err)
		}
		if n, records, err := BatchSpan(b); err != nil || n != ControlBatchLen || records != 1 {
			t.Fatalf("span: %d bytes, %d records, %v", n, records, err)
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b); err != nil {
			t.Fatal(err)
		}
		if rb.FirstOffset != m.BaseOffset || rb.PartitionLeaderEpoch != m.LeaderEpoch || rb.Attributes != 0x30 ||
			rb.ProducerID != m.ProducerID || rb.ProducerEpoch != m.ProducerEpoch || rb.FirstSequence != -1 || rb.NumRecords != 1 ||
			rb.FirstTimestamp != m.Timestamp || rb.MaxTimestamp != m.Timestamp || rb.LastOffsetDelta != 0 {
			t.Fatalf("batch header %+v for %+v", rb, m)
		}
		var rec kmsg.Record
		if err := rec.ReadFrom(rb.Records); err != nil {
			t.Fatal(err)
		}
		var key kmsg.ControlRecordKey
		if err := key.ReadFrom(rec.Key); err != nil {
			t.Fatal(err)
		}
		wantType := kmsg.ControlRecordKeyTypeAbort
		if m.Commit {
			wantType = kmsg.ControlRecordKeyTypeCommit
		}
		if key.Version != 0 || key.Type != wantType {
			t.Fatalf("control key %+v, want type %v", key, wantType)
		}
		var val kmsg.EndTxnMarker
		if err := val.ReadFrom(rec.Value); err != nil {
			t.Fatal(err)
		}
		if val.Version != 0 || val.CoordinatorEpoch != m.CoordinatorEpoch || len(rec.Headers) != 0 {
			t.Fatalf("marker value %+v, headers %d", val, len(rec.Headers))
		}
		if _, err := ParseProduceBatch(b, 1<<20); !errors.Is(err, ErrBatchControl) {
			t.Fatalf("a client's control batch: %v, want ErrBatchControl", err)
		}
	}
}
