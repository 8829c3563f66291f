package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
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
	for _, pl := range a1.leaders.snapshot() {
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
