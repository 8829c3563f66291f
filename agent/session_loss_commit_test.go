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
// lost, the agent must answer them at once.
//
// Found next by its checker (failed-read, in a 30-minute run): it answered them
// NOT_LEADER_OR_FOLLOWER, which says "not written", although the Txn had reached etcd and applied.
// franz-go gave up on the record at its delivery deadline and reported it failed, while consumers
// read it. A commit whose outcome the agent does not know is answered REQUEST_TIMED_OUT: "maybe
// written"; the producer retries, and the retry is a duplicate answered with the original offset.
func TestSessionLossFailsCommitInFlight(t *testing.T) {
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	c := ledTopicConn(t, a, "inflight")
	tp := topicTP(t, a, "inflight", 0)
	pid, epoch := c.initProducerID()
	wantOK(t, "produce", c.produceOne("inflight", 0, valueBatch(pid, epoch, 0, nil, "before")).ErrorCode)

	// The next commit applies, but its answer does not come back, as when etcd becomes unreachable
	// right after the Txn: the agent waits until the commit's context ends.
	entered, release := make(chan struct{}), newGate(t)
	var once sync.Once
	h.setCommit(func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		errs := next()
		once.Do(func() { close(entered) })
		select {
		case <-release.C():
			return errs
		case <-ctx.Done():
			return failAll(commits, ctx.Err())
		}
	})
	batch := valueBatch(pid, epoch, 1, nil, "in flight")
	corr := c.send(produceReq("inflight", -1, map[int32][]byte{0: batch}), produceVersion)
	waitChan(t, "the commit", entered)

	h.session(t, 0).lose()
	wantCode(t, "produce whose commit was waiting when the session was lost", c.recvProduce(corr).ErrorCode, kerr.RequestTimedOut)

	// The agent registers again and leads again; the producer's retry is the duplicate it is.
	h.setCommit(nil)
	release.open()
	waitFor(t, "the agent to lead again", func() bool { return a.lead.leaders.get(tp) != nil && h.count() > 1 })
	p := c.produceOne("inflight", 0, batch)
	wantOK(t, "the retried produce", p.ErrorCode)
	if p.BaseOffset != 1 {
		t.Fatalf("the retry answered at offset %d, want the original 1", p.BaseOffset)
	}
	checkLog(t, a, "inflight", 0, []string{"before", "in flight"})
}
