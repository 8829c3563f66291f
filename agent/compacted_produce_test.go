package agent

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// keyedRecords encodes n records, each with key k<i> except those listed in keyless.
func keyedRecords(n int, keyless ...int) []byte {
	var b []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i), Key: []byte{'k', byte('0' + i%10)}, Value: []byte("v")}
		for _, j := range keyless {
			if i == j {
				r.Key = nil
			}
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		b = r.AppendTo(b)
	}
	return b
}

// TestCompactedTopicRefusesKeylessRecords produces to a compacted topic: a batch with a record
// without a key is refused with INVALID_RECORD naming that record (Produce v8+ record errors), whatever
// its codec; keyed batches are written; a topic with the delete policy takes keyless records.
func TestCompactedTopicRefusesKeylessRecords(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, []kgo.Opt{kgo.RecordRetries(1)}, a)
	createTopic(t, cl, "compacted", 1, map[string]*string{"cleanup.policy": sp("compact")})
	createTopic(t, cl, "plain", 1, nil)
	c := dialRaw(t, a)
	for name, codec := range kwiretest.Codecs {
		h := kwiretest.PlainSpec(4)
		h.Codec = codec
		bad := kwiretest.Build(h, kwiretest.Compress(t, codec, keyedRecords(4, 2)))
		r := c.produceOne("compacted", 0, bad)
		if r.ErrorCode != kerr.InvalidRecord.Code {
			t.Errorf("%s: keyless record: error %d, want INVALID_RECORD", name, r.ErrorCode)
			continue
		}
		if len(r.ErrorRecords) != 1 || r.ErrorRecords[0].RelativeOffset != 2 || r.ErrorMessage == nil {
			t.Errorf("%s: record errors %+v, message %v; want record 2 named", name, r.ErrorRecords, r.ErrorMessage)
		}
		good := kwiretest.Build(h, kwiretest.Compress(t, codec, keyedRecords(4)))
		if r := c.produceOne("compacted", 0, good); r.ErrorCode != 0 {
			t.Errorf("%s: keyed batch: error %d", name, r.ErrorCode)
		}
		if r := c.produceOne("plain", 0, bad); r.ErrorCode != 0 {
			t.Errorf("%s: keyless batch to a delete topic: error %d", name, r.ErrorCode)
		}
	}
	ctx := testCtx(t)
	err := cl.ProduceSync(ctx, &kgo.Record{Topic: "compacted", Value: []byte("no key")}).FirstErr()
	if !errors.Is(err, kerr.InvalidRecord) {
		t.Errorf("kgo keyless produce: %v, want INVALID_RECORD", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "compacted", Key: []byte("k"), Value: []byte("v")}).FirstErr(); err != nil {
		t.Errorf("kgo keyed produce: %v", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "compacted", Key: []byte{}, Value: nil}).FirstErr(); err != nil {
		t.Errorf("kgo tombstone with an empty key: %v", err)
	}
}
