package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// Found by the chaos suite (e2e/chaos, a rolling restart): a failed commit drops the partition's
// leader state but keeps its leader key, for the leadership loop to re-establish. If placement has
// meanwhile given the partition to another agent (one that just joined), the loop neither leads it
// again nor resigns it: the key stays until this agent's lease ends, the new leader can never
// acquire it, and the partition takes no produce at all (93 s in the run that found it, until the
// agent was killed).
//
// Here a1's leadership loop is held inside an Acquire while every commit fails (dropping the leader
// state of each of t's partitions) and a2 joins; when the loop goes on, placement moves some of t's
// partitions to a2. Each must end up led by someone.
func TestFailedCommitDoesNotOrphanMovedPartition(t *testing.T) {
	tc := newTestCluster(t)
	a1, h := hookedAgent(t, tc, "a1")
	cl := kgoClient(t, nil, a1)
	const partitions = 4
	createLedTopic(t, cl, a1, "orphan", partitions, nil)

	// Hold a1's leadership loop in the Acquire of a new topic's partition.
	hold := newGate(t)
	entered := make(chan struct{})
	var once sync.Once
	h.setAcquire(func(ctx context.Context, tp coord.TP) error {
		if u, ok := a1.cache.Topic("holder"); ok && tp == u.TP(0) {
			once.Do(func() { close(entered) })
			<-hold.C()
		}
		return nil
	})
	// Created in etcd directly: CreateTopics would wait for the leader this test holds back.
	if _, err := tc.client().CreateTopic(testCtx(t), coord.Topic{Name: "holder", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	waitChan(t, "a1's leadership loop to acquire the new topic's partition", entered)

	// Every commit fails: each partition's leader state is dropped, its key kept.
	h.setCommit(func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		return failAll(commits, errInjected)
	})
	c := dialRaw(t, a1)
	var tps []coord.TP
	for p := range int32(partitions) {
		tp := topicTP(t, a1, "orphan", p)
		tps = append(tps, tp)
		pr := c.produceOne("orphan", p, valueBatch(-1, -1, -1, nil, fmt.Sprint("v", p)))
		wantCode(t, "produce with commits failing", pr.ErrorCode, kerr.RequestTimedOut)
		if a1.lead.leaders.get(tp) != nil {
			t.Fatalf("a1 still leads %v after its commit failed", tp)
		}
	}
	h.setCommit(nil)

	// a2 joins while a1's loop is held; then the loop goes on, with placement moving partitions.
	a2 := tc.agent("a2")
	waitFor(t, "a1 to see a2", func() bool { return len(a1.cache.Agents()) == 2 })
	hold.open()

	waitFor(t, "every partition of orphan to be led again", func() bool {
		for _, tp := range tps {
			if a1.lead.leaders.get(tp) == nil && a2.lead.leaders.get(tp) == nil {
				return false
			}
		}
		return true
	})
	for i, tp := range tps {
		l, _ := a1.cache.Leader(tp)
		t.Logf("orphan/%d: led by %s", i, l.Agent)
	}
}
