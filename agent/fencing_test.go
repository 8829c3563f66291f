package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// A zombie leader: agent A holds a produce whose commit is in flight when its lease is revoked. B
// takes the partition over and commits its own records. When A's commit finally runs, the fence
// refuses it: A's client gets NOT_LEADER_OR_FOLLOWER, nothing A wrote becomes visible, and the log
// is B's records at dense offsets (invariants 2 and 3).
func TestZombieLeaderIsFenced(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	// Placement gives a leaderless partition to the smallest id: "successor" < "zombie".
	za, h := hookedAgent(t, tc, "zombie")
	ac := ledTopicConn(t, za, "fenced")
	tp := topicTP(t, za, "fenced", 0)

	// A's commits wait for release; once partitioned, A cannot take leaderships either.
	entered, release := make(chan struct{}), newGate(t)
	var once sync.Once
	var partitioned atomic.Bool
	h.setCommit(func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		once.Do(func() { close(entered) })
		select {
		case <-release.C():
		case <-ctx.Done():
			return failAll(commits, ctx.Err())
		}
		return next()
	})
	h.setAcquire(func(context.Context, coord.TP) error {
		if partitioned.Load() {
			return errInjected
		}
		return nil
	})
	corr := ac.send(produceReq("fenced", -1, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "zombie-0", "zombie-1")}), produceVersion)
	waitChan(t, "A's commit", entered)

	partitioned.Store(true)
	first := h.session(t, 0)
	if _, err := tc.client().Etcd().Revoke(testCtx(t), first.coord().LeaseID()); err != nil {
		t.Fatal(err)
	}
	waitChan(t, "A's session to end", first.Done())
	waitFor(t, "A to drop its leaderships", func() bool { return za.lead.leaders.get(tp) == nil })
	late := dialRaw(t, za).produceOne("fenced", 0, valueBatch(-1, -1, -1, nil, "zombie-late"))
	wantCode(t, "produce to A after its session ended", late.ErrorCode, kerr.NotLeaderForPartition)

	sb := tc.agent("successor")
	waitFor(t, "B to lead the partition", func() bool { return sb.lead.leaders.get(tp) != nil })
	bc := dialRaw(t, sb)
	p := bc.produceOne("fenced", 0, valueBatch(-1, -1, -1, nil, "b-0", "b-1", "b-2"))
	wantOK(t, "produce to B", p.ErrorCode)
	if p.BaseOffset != 0 {
		t.Fatalf("B's first records at offset %d, want 0", p.BaseOffset)
	}

	release.open()
	// A gave up on its commit when its session ended, not knowing whether it had applied: "maybe
	// written" (it had not: nothing of A's is visible below).
	wantCode(t, "A's held produce", ac.recvProduce(corr).ErrorCode, kerr.RequestTimedOut)
	p = bc.produceOne("fenced", 0, valueBatch(-1, -1, -1, nil, "b-3"))
	wantOK(t, "produce to B", p.ErrorCode)
	if p.BaseOffset != 3 {
		t.Fatalf("B's next record at offset %d, want 3", p.BaseOffset)
	}
	want := []string{"b-0", "b-1", "b-2", "b-3"}
	checkLog(t, sb, "fenced", 0, want)
	// A's own view, kept by its etcd watch, comes to the same log.
	waitFor(t, "A's view of the log to catch up", func() bool { return za.cache.HighWatermark(tp) == int64(len(want)) })
	checkLog(t, za, "fenced", 0, want)
}

// Once an agent's session is lost (Done), it refuses produce for its partitions at once and fails
// what it holds with NOT_LEADER_OR_FOLLOWER, even while its leadership loop is stuck on etcd (here:
// an Acquire that hangs, as it does when etcd is unreachable).
func TestSessionLossStopsProduceAtOnce(t *testing.T) {
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "live", 1, nil)
	tp := topicTP(t, a, "live", 0)
	c := dialRaw(t, a)
	wantOK(t, "produce", c.produceOne("live", 0, valueBatch(-1, -1, -1, nil, "before")).ErrorCode)

	// Park the leadership loop in an Acquire that does not return.
	stuck, unstick := make(chan struct{}), newGate(t)
	var once sync.Once
	h.setAcquire(func(ctx context.Context, _ coord.TP) error {
		once.Do(func() { close(stuck) })
		select {
		case <-unstick.C():
		case <-ctx.Done():
		}
		return errInjected
	})
	// Created in etcd directly: CreateTopics would wait for the leader this test holds back.
	if _, err := tc.client().CreateTopic(testCtx(t), coord.Topic{Name: "other", Partitions: 1}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	waitChan(t, "the leadership loop to call Acquire", stuck)

	// A produce already buffered when the session goes.
	putEntered, putRelease := holdPuts(t, tc.store)
	corr := c.send(produceReq("live", -1, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "buffered")}), produceVersion)
	waitChan(t, "the PUT", putEntered)

	h.session(t, 0).lose()
	late := dialRaw(t, a).produceOne("live", 0, valueBatch(-1, -1, -1, nil, "late"))
	wantCode(t, "produce after the session was lost", late.ErrorCode, kerr.NotLeaderForPartition)
	putRelease.open()
	wantCode(t, "produce buffered when the session was lost", c.recvProduce(corr).ErrorCode, kerr.NotLeaderForPartition)

	// Let the loop go: the agent registers again, leads again, and produce resumes at offset 1.
	h.setAcquire(nil)
	unstick.open()
	waitFor(t, "the agent to lead again", func() bool { return a.lead.leaders.get(tp) != nil && h.count() > 1 })
	p := c.produceOne("live", 0, valueBatch(-1, -1, -1, nil, "after"))
	wantOK(t, "produce after re-registering", p.ErrorCode)
	if p.BaseOffset != 1 {
		t.Fatalf("produce after re-registering at offset %d, want 1", p.BaseOffset)
	}
	checkLog(t, a, "live", 0, []string{"before", "after"})
}
