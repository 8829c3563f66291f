package agent

import (
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// TestLogAppendTime produces to a topic with message.timestamp.type=LogAppendTime a batch whose
// records carry a producer's time of long ago: the produce answer names the agent's time, and a
// consumer reads every record with that time, of type LogAppendTime, while a CreateTime topic keeps the
// producer's.
func TestLogAppendTime(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createTopic(t, cl, "lat", 1, map[string]*string{"message.timestamp.type": sp("LogAppendTime")})
	createTopic(t, cl, "ct", 1, nil)
	c := dialRaw(t, a)
	before := time.Now().UnixMilli()
	batch := kwiretest.CodecBatch(t, 0, 3) // records at 1000 ms after the epoch
	r := c.produceOne("lat", 0, batch)
	after := time.Now().UnixMilli()
	if r.ErrorCode != 0 || r.LogAppendTime < before || r.LogAppendTime > after {
		t.Fatalf("produce: error %d, log append time %d, want within [%d, %d]", r.ErrorCode, r.LogAppendTime, before, after)
	}
	if r := c.produceOne("ct", 0, kwiretest.CodecBatch(t, 0, 3)); r.ErrorCode != 0 || r.LogAppendTime != -1 {
		t.Fatalf("CreateTime produce: error %d, log append time %d, want -1", r.ErrorCode, r.LogAppendTime)
	}
	for _, topic := range []string{"lat", "ct"} {
		recs := consumeAll(t, []*Agent{a}, topic, 3)
		for _, rec := range recs {
			lat := rec.Attrs.TimestampType() == 1
			switch {
			case topic == "lat" && (!lat || rec.Timestamp.UnixMilli() != r.LogAppendTime):
				t.Errorf("%s: record at %d: time %d (log append time %v), want %d", topic, rec.Offset, rec.Timestamp.UnixMilli(), lat, r.LogAppendTime)
			case topic == "ct" && (lat || rec.Timestamp.UnixMilli() > 2000):
				t.Errorf("%s: record at %d: time %d (log append time %v), want the producer's", topic, rec.Offset, rec.Timestamp.UnixMilli(), lat)
			}
		}
	}
}
