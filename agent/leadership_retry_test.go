package agent

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// A commit fails (the partition's leader state is dropped, its key kept), then the acquisition that
// would lead it again fails too, as when etcd refuses writes for a moment. Nothing else changes in
// etcd, so nothing would wake the leadership loop: it must try again by itself, and the partition
// take produce again.
func TestFailedAcquireIsRetried(t *testing.T) {
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	c := ledTopicConn(t, a, "reacquire")
	tp := topicTP(t, a, "reacquire", 0)
	wantOK(t, "produce", c.produceOne("reacquire", 0, valueBatch(-1, -1, -1, nil, "before")).ErrorCode)
	before := a.lead.leaders.get(tp)

	var commitFailed, acquireFailed atomic.Bool
	h.setAcquire(func(ctx context.Context, got coord.TP) error {
		if got == tp && acquireFailed.CompareAndSwap(false, true) {
			return errInjected
		}
		return nil
	})
	h.setCommit(func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		if commitFailed.CompareAndSwap(false, true) {
			return failAll(commits, errInjected)
		}
		return next()
	})
	p := c.produceOne("reacquire", 0, valueBatch(-1, -1, -1, nil, "lost"))
	wantCode(t, "produce whose commit failed", p.ErrorCode, kerr.RequestTimedOut)
	waitFor(t, "the injected acquisition failure", acquireFailed.Load)
	waitFor(t, "the partition to be led again", func() bool {
		pl := a.lead.leaders.get(tp)
		return pl != nil && pl != before
	})
	p = c.produceOne("reacquire", 0, valueBatch(-1, -1, -1, nil, "after"))
	wantOK(t, "produce after the retried acquisition", p.ErrorCode)
	checkLog(t, a, "reacquire", 0, []string{"before", "after"})
}

// While acquisitions keep failing the loop keeps trying, with pauses between attempts, and it stops
// when the agent closes (Close waits for it).
func TestAcquireRetryStopsOnClose(t *testing.T) {
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	c := ledTopicConn(t, a, "retrystop")
	tp := topicTP(t, a, "retrystop", 0)

	var attempts atomic.Int32
	h.setAcquire(func(ctx context.Context, got coord.TP) error {
		if got == tp {
			attempts.Add(1)
			return errInjected
		}
		return nil
	})
	h.setCommit(func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		return failAll(commits, errInjected)
	})
	wantCode(t, "produce whose commit failed", c.produceOne("retrystop", 0, valueBatch(-1, -1, -1, nil, "x")).ErrorCode,
		kerr.RequestTimedOut)
	waitFor(t, "three acquisition attempts", func() bool { return attempts.Load() >= 3 })
	if n := metricValue(t, a, "streamhouse_leadership_retries_total"); n < 2 {
		t.Fatalf("streamhouse_leadership_retries_total = %v after three attempts, want ≥ 2", n)
	}

	closed := make(chan struct{})
	go func() {
		a.Close()
		close(closed)
	}()
	waitChan(t, "Close with the leadership loop between retries", closed)
	n := attempts.Load()
	if attempts.Load() != n {
		t.Fatal("acquisitions attempted after Close returned")
	}
}

// Placement moves partitions to an agent that joined, and their old leader's resignations fail: it
// must resign again by itself once etcd takes writes again, or the new agent can never take the keys
// (its acquisitions find them held, and nothing else changes in etcd to wake either agent).
func TestFailedResignIsRetried(t *testing.T) {
	tc := newTestCluster(t)
	a1, h := hookedAgent(t, tc, "a1")
	createLedTopic(t, kgoClient(t, nil, a1), a1, "resign", 4, nil)

	var failing atomic.Bool
	var failed atomic.Int32
	failing.Store(true)
	h.setResign(func(ctx context.Context, tp coord.TP) error {
		if failing.Load() {
			failed.Add(1)
			return errInjected
		}
		return nil
	})
	a2 := tc.agent("a2")
	waitFor(t, "a resignation to fail", func() bool { return failed.Load() >= 1 })
	failing.Store(false)
	waitFor(t, "every partition to be led, a share of them by a2", func() bool {
		if len(a2.lead.leaders.snapshot()) == 0 {
			return false
		}
		for _, topic := range a1.cache.Topics() {
			for p := range topic.Partitions {
				if tp := topic.TP(p); a1.lead.leaders.get(tp) == nil && a2.lead.leaders.get(tp) == nil {
					return false
				}
			}
		}
		return true
	})
}
