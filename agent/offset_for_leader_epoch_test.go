package agent

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetForLeaderEpoch answers where each leader's epoch ends in the log: the first offset committed
// under the next epoch, or the high watermark for the newest; an older current epoch is fenced and a
// newer one not known yet, as Kafka answers.
func TestOffsetForLeaderEpoch(t *testing.T) {
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	a2 := tc.agent("a2", func(c *Config) { c.AZ = "z1" })
	createTopic(t, kgoClient(t, nil, a1, a2), "epochs", 2, nil)
	waitFor(t, "each agent leads a partition", func() bool { return leadsOf(a1, "epochs") == 1 && leadsOf(a2, "epochs") == 1 })
	var p int32
	for _, pl := range a1.lead.leaders.snapshot() {
		if pl.topic == "epochs" {
			p = pl.tp.Partition
		}
	}
	tp := topicTP(t, a2, "epochs", p)
	for _, v := range []string{"a", "b", "c"} {
		wantOK(t, "produce to the first leader", dialRaw(t, a1).produceOne("epochs", p, valueBatch(-1, -1, -1, nil, v)).ErrorCode)
	}
	l1, _ := a1.cache.Leader(tp)
	first := int64(l1.Epoch)
	if err := a1.Shutdown(testCtx(t)); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitFor(t, "a2 to lead the partition", func() bool { return a2.lead.leaders.get(tp) != nil })
	for _, v := range []string{"d", "e"} {
		wantOK(t, "produce to the successor", dialRaw(t, a2).produceOne("epochs", p, valueBatch(-1, -1, -1, nil, v)).ErrorCode)
	}
	l2, _ := a2.cache.Leader(tp)
	second := int64(l2.Epoch)
	if second <= first {
		t.Fatalf("successor's epoch %d is not above %d", second, first)
	}

	ask := func(topic string, current, epoch int64) kmsg.OffsetForLeaderEpochResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version = 4
		rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = p, int32(current), int32(epoch)
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := a2.handleOffsetForLeaderEpoch(testCtx(t), req).(*kmsg.OffsetForLeaderEpochResponse)
		return resp.Topics[0].Partitions[0]
	}
	for _, c := range []struct {
		name               string
		current, epoch     int64
		wantEpoch, wantEnd int64
	}{
		{"the first leader's epoch ends where the successor began", -1, first, first, 3},
		{"the newest epoch ends at the high watermark", second, second, second, 5},
		{"an epoch between the two ends where the successor began", -1, second - 1, first, 3},
		{"an epoch past the newest ends at the high watermark", -1, second + 10, second, 5},
	} {
		got := ask("epochs", c.current, c.epoch)
		wantOK(t, c.name, got.ErrorCode)
		if int64(got.LeaderEpoch) != c.wantEpoch || got.EndOffset != c.wantEnd {
			t.Errorf("%s: epoch %d, end %d; want epoch %d, end %d", c.name, got.LeaderEpoch, got.EndOffset, c.wantEpoch, c.wantEnd)
		}
	}
	wantCode(t, "a stale current epoch", ask("epochs", first, first).ErrorCode, kerr.FencedLeaderEpoch)
	wantCode(t, "a current epoch not known yet", ask("epochs", second+1, second).ErrorCode, kerr.UnknownLeaderEpoch)
	wantCode(t, "an unknown topic", ask("nope", -1, 1).ErrorCode, kerr.UnknownTopicOrPartition)
}

// FuzzOffsetForLeaderEpoch feeds arbitrary OffsetForLeaderEpoch requests to an agent's handler: it
// answers every partition asked, at the request's version, and never panics.
func FuzzOffsetForLeaderEpoch(f *testing.F) {
	tc := newTestCluster(f)
	a := tc.agent("a1")
	createTopic(f, kgoClient(f, nil, a), "t", 2, nil)
	for v := int16(0); v <= 4; v++ {
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version = v
		req.Topics = []kmsg.OffsetForLeaderEpochRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetForLeaderEpochRequestTopicPartition{
			{Partition: 0, CurrentLeaderEpoch: -1, LeaderEpoch: 5}, {Partition: 7, LeaderEpoch: -1}}}}
		f.Add(v, req.AppendTo(nil))
	}
	f.Fuzz(func(t *testing.T, version int16, body []byte) {
		if !supported(int16(kmsg.OffsetForLeaderEpoch), version) {
			return
		}
		req := kmsg.NewPtrOffsetForLeaderEpochRequest()
		req.Version = version
		if req.ReadFrom(body) != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		resp := a.handleOffsetForLeaderEpoch(ctx, req).(*kmsg.OffsetForLeaderEpochResponse)
		if len(resp.Topics) != len(req.Topics) {
			t.Fatalf("%d topics answered, %d asked", len(resp.Topics), len(req.Topics))
		}
		back := kmsg.NewPtrOffsetForLeaderEpochResponse()
		back.Version = version
		if err := back.ReadFrom(resp.AppendTo(nil)); err != nil {
			t.Fatalf("v%d: answer does not decode: %v", version, err)
		}
	})
}
