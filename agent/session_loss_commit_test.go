package agent

import (
	"context"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// Found by the chaos suite (e2e/chaos, an agent cut off from etcd): a commit already waiting on etcd
// when the session is lost held its produce requests until etcd answered again. Their clients,
// waiting for that answer, could not go to the partition's new leader, so the partition took no
// produce for as long as the agent was cut off, not for about the lease TTL. Once the session is
// lost, the agent must answer them NOT_LEADER_OR_FOLLOWER at once, as it does what is buffered.
func TestSessionLossFailsCommitInFlight(t *testing.T) {
	tc := newTestCluster(t)
	h := newSessionHooks(t)
	a := tc.newAgent("a1")
	a.wrapSession = h.wrap
	startAgent(t, a)
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "inflight", 1, nil)
	tp := topicTP(t, a, "inflight", 0)
	c := dialRaw(t, a)
	wantOK(t, "produce", c.produceOne("inflight", 0, valueBatch(-1, -1, -1, nil, "before")).ErrorCode)

	// The next commit hangs, as a Txn does when etcd cannot be reached, until its context ends.
	entered, release := make(chan struct{}), newGate(t)
	var once sync.Once
	h.setCommit(func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		once.Do(func() { close(entered) })
		select {
		case <-release.C():
			return failAll(commits, errInjected)
		case <-ctx.Done():
			return failAll(commits, ctx.Err())
		}
	})
	corr := c.send(produceReq("inflight", -1, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "in flight")}), produceVersion)
	waitChan(t, "the commit", entered)

	h.session(t, 0).lose()
	wantCode(t, "produce whose commit was waiting when the session was lost", c.recvProduce(corr).ErrorCode, kerr.NotLeaderForPartition)

	// The agent registers again, leads again, and produce resumes at offset 1.
	h.setCommit(nil)
	release.open()
	waitFor(t, "the agent to lead again", func() bool { return a.leaders.get(tp) != nil && h.count() > 1 })
	p := c.produceOne("inflight", 0, valueBatch(-1, -1, -1, nil, "after"))
	wantOK(t, "produce after re-registering", p.ErrorCode)
	if p.BaseOffset != 1 {
		t.Fatalf("produce after re-registering at offset %d, want 1", p.BaseOffset)
	}
	checkLog(t, a, "inflight", 0, []string{"before", "after"})
}
