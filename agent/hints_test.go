package agent

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A NOT_LEADER_OR_FOLLOWER answer names where to produce now (KIP-951): a stopping agent names another
// agent, with its address, so that clients move without waiting for a metadata refresh.
func TestProduceNotLeaderHintsWhereToGo(t *testing.T) {
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	a2 := tc.agent("a2", func(c *Config) { c.AZ = "z1" })
	createTopic(t, kgoClient(t, nil, a1, a2), "hints", 2, nil)
	waitFor(t, "each agent leads a partition", func() bool { return leadsOf(a1, "hints") == 1 && leadsOf(a2, "hints") == 1 })
	var p int32
	for _, pl := range a1.lead.leaders.snapshot() {
		if pl.topic == "hints" {
			p = pl.tp.Partition
		}
	}
	a1.stopping.Store(true)
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 11
	rt := kmsg.NewProduceResponseTopic()
	rt.Topic = "hints"
	sp := kmsg.NewProduceResponseTopicPartition()
	sp.Partition, sp.ErrorCode = p, kerr.NotLeaderForPartition.Code
	rt.Partitions = append(rt.Partitions, sp)
	resp.Topics = append(resp.Topics, rt)

	a1.leaderHints(resp, "")
	got := resp.Topics[0].Partitions[0].CurrentLeader
	if got.LeaderID != nodeID("a2") || got.LeaderEpoch <= 0 {
		t.Fatalf("hint %+v, want a2 (node %d) with the partition's epoch", got, nodeID("a2"))
	}
	if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != nodeID("a2") {
		t.Fatalf("brokers %+v, want only a2", resp.Brokers)
	}
}

// A producer whose partition's leader shuts down moves to the successor on the NOT_LEADER answer
// itself, not at its next metadata refresh: the stopping agent holds the answer until the successor is
// known and names it at its new, higher epoch (franz-go moves only on a newer epoch). The client here
// never refreshes metadata on its own, so without the hint it would not produce again.
func TestShutdownProducerMovesToSuccessor(t *testing.T) {
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	a2 := tc.agent("a2", func(c *Config) { c.AZ = "z1" })
	createTopic(t, kgoClient(t, nil, a1, a2), "moves", 2, nil)
	waitFor(t, "each agent leads a partition", func() bool { return leadsOf(a1, "moves") == 1 && leadsOf(a2, "moves") == 1 })
	var p int32
	for _, pl := range a1.lead.leaders.snapshot() {
		if pl.topic == "moves" {
			p = pl.tp.Partition
		}
	}
	cl := kgoClient(t, []kgo.Opt{kgo.MetadataMinAge(time.Hour), kgo.MetadataMaxAge(time.Hour),
		kgo.RecordPartitioner(kgo.ManualPartitioner())}, a1)
	produce := func(v string) {
		t.Helper()
		acked := make(chan error, 1)
		cl.Produce(context.Background(), &kgo.Record{Topic: "moves", Partition: p, Value: []byte(v)},
			func(_ *kgo.Record, err error) { acked <- err })
		select {
		case err := <-acked:
			if err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		case <-time.After(20 * time.Second): // a deadline, not a wait: the client would never move
			t.Fatalf("produce %s: not acknowledged; the producer did not move to the successor", v)
		}
	}
	produce("before")

	shut := startShutdown(t, a1)
	produce("during")
	if err := waitChan(t, "shutdown", shut); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	produce("after")
	checkLog(t, a2, "moves", p, []string{"before", "during", "after"})
}
