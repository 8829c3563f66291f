package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// wideTopic and widePartitions: enough partitions that one flush of an agent commits dozens of them
// in each etcd Txn, as a production cluster's would.
const (
	wideTopic      = "wide"
	widePartitions = 600
	wideRate       = 5000 // records/s, round-robin over the partitions
	joinRounds     = 5
)

// A third agent joining two that are busy with a producer writing every partition of a wide topic:
// the two hand over a third of their partitions each (resign while their flushes are committing), and
// leadership must end balanced with every partition taking produce; then the third leaves (SIGTERM)
// and the two take everything back. A few rounds.
//
// A regression test: it reproduced a bug, fixed in f9b0fdd (which the chaos suite found too). An
// agent's flush commits many partitions per etcd Txn. When the agent resigns partitions that a pending
// flush holds, the Txn fails on their fenced compare; coord.Session.Commit retries the others once, and
// when that retry fails too (more partitions were resigned meanwhile) it fails them with "not
// committed: its retry Txn failed on another partition's fenced compare". The agent then drops those
// partitions' leadership locally ("commit failed; partition leadership dropped until re-established")
// but keeps their leader keys in etcd, on its lease. When placement gave such a partition to another
// agent, the holder never resigned it (reconcile resigned only what it led locally) and the other could
// never acquire it: the partition stayed led, per etcd and Metadata, by an agent answering every
// produce with NOT_LEADER_OR_FOLLOWER, until that agent's lease ended. The agent now resigns such
// keys (resignOrphans).
func TestClusterJoinUnderLoad(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 2)
	createTopic(t, c.brokers()[0], wideTopic, widePartitions)
	acked := produceWide(t, c)
	c.waitBalanced(t, "a1", "a2")
	waitAcked(t, acked, widePartitions*10) // warmed up: every flush carries many partitions
	for round := 1; round <= joinRounds; round++ {
		start := time.Now()
		var a3 *member
		if round == 1 {
			a3 = c.start(t, "a3", "z3", "127.0.0.1:0", "127.0.0.1:0")
		} else {
			a3 = c.restart(t, "a3")
		}
		c.waitBalancedOrExplain(t, "a1", "a2", "a3")
		probeAll(t, c, round)
		t.Logf("round %d: a3 joined, balanced, every partition took a record after %v (%d acknowledged so far)",
			round, time.Since(start).Round(time.Millisecond), acked())
		a3.terminate(t)
		c.waitBalancedOrExplain(t, "a1", "a2")
	}
}

// produceWide produces to the wide topic, round-robin, until the test ends; it returns a counter of
// acknowledgements.
func produceWide(t *testing.T, c *cluster) func() int {
	t.Helper()
	cl := c.client(t, kgo.DefaultProduceTopic(wideTopic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.MaxBufferedRecords(1<<20))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var mu sync.Mutex
	n := 0
	wg.Go(func() {
		tick := time.NewTicker(trafficTick)
		defer tick.Stop()
		for i := 0; ; i++ {
			for range wideRate / int(time.Second/trafficTick) {
				cl.Produce(ctx, kgo.StringRecord(fmt.Sprintf("wide-%07d", i)), func(_ *kgo.Record, err error) {
					if err == nil {
						mu.Lock()
						n++
						mu.Unlock()
					}
				})
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// waitAcked polls acked until it reaches n, within progressTimeout.
func waitAcked(t *testing.T, acked func() int, n int) {
	t.Helper()
	deadline := time.Now().Add(progressTimeout)
	tick := time.NewTicker(trafficTick)
	defer tick.Stop()
	for acked() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records acknowledged within %v", acked(), n, progressTimeout)
		}
		<-tick.C
	}
}

// waitBalancedOrExplain is waitBalanced, with what the agents logged about dropped leaderships when
// balance does not come.
func (c *cluster) waitBalancedOrExplain(t *testing.T, ids ...string) {
	t.Helper()
	_, why := c.pollStatus(t, settleTimeout, func(st clusterStatus) string { return st.unbalanced(ids...) })
	if why == "" {
		return
	}
	var dropped []string
	for _, id := range ids {
		if n := len(c.agents[id].log.all(`{"@level":"warn","@message":"commit failed; partition leadership dropped`)); n > 0 {
			dropped = append(dropped, fmt.Sprintf("%s %d times", id, n))
		}
	}
	t.Fatalf("leadership not balanced over %v within %v: %s; \"commit failed; partition leadership dropped until "+
		"re-established\" logged by: %s", ids, settleTimeout, why, strings.Join(dropped, ", "))
}

// probeAll produces one record to every partition of the wide topic with a new producer and fails
// the test naming the partitions that took none within progressTimeout.
func probeAll(t *testing.T, c *cluster, round int) {
	t.Helper()
	cl := c.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for p := range int32(widePartitions) {
		recs = append(recs, &kgo.Record{Topic: wideTopic, Partition: p, Value: fmt.Appendf(nil, "probe-%d-%d", round, p)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), progressTimeout)
	defer cancel()
	var failed []string
	for _, r := range cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			failed = append(failed, fmt.Sprintf("%s/%d", wideTopic, r.Record.Partition))
		}
	}
	if len(failed) > 0 {
		t.Fatalf("%d partitions took no record within %v: %s; leaders: %v", len(failed), progressTimeout, sample(failed),
			c.status(t).leaders(wideTopic))
	}
}
