package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// fanIn is more idempotent producers on one partition within one flush than etcd's default 128
// operations of one Txn allow for, each needing a producer-state put besides the index put.
const fanIn = 200

// fanInBatch is producer i's batch of sequence seq: every one the same size.
func fanInBatch(pid int64, epoch int16, i int, seq int32) []byte {
	return valueBatch(pid, epoch, seq, nil, fmt.Sprintf("p%03d-%d", i, seq))
}

// fanInAgent starts an agent whose flush seals once exactly fanIn such batches are buffered.
func fanInAgent(t *testing.T, tc *testCluster, id string) *Agent {
	size := int64(len(fanInBatch(1, 0, 0, 0)))
	return tc.agent(id, func(c *Config) {
		c.FlushInterval = time.Minute // sealed by size only: all fanIn batches in one flush
		c.FlushBytes = fanIn * size
		// A batch refused at once (its leader's session lost to a late keep-alive on a busy
		// machine) would leave the flush short of its size, and every other batch unanswered.
		c.LeaseTTL = 10 * time.Second
	})
}

// fanInRound sends the batch of sequence seq of every producer, each on its own connection (one
// connection takes only maxInFlight requests at once), and returns their answers.
func fanInRound(t *testing.T, conns []*rawConn, topic string, pids []int64, epochs []int16, seq int32) []kmsg.ProduceResponseTopicPartition {
	t.Helper()
	corrs := make([]int32, len(pids))
	for i := range pids {
		req := produceReq(topic, -1, map[int32][]byte{0: fanInBatch(pids[i], epochs[i], i, seq)})
		corrs[i] = conns[i].send(req, produceVersion)
	}
	out := make([]kmsg.ProduceResponseTopicPartition, len(pids))
	for i, corr := range corrs {
		out[i] = conns[i].recvProduce(corr)
	}
	return out
}

// fanInConns opens one connection to a per producer.
func fanInConns(t *testing.T, a *Agent) []*rawConn {
	conns := make([]*rawConn, fanIn)
	for i := range conns {
		conns[i] = dialRaw(t, a)
	}
	return conns
}

// wantDense checks that every answer is OK and that the base offsets are from, from+1, … in some
// order; it returns the value at each offset.
func wantDense(t *testing.T, what string, answers []kmsg.ProduceResponseTopicPartition, from int64, seq int32) map[int64]string {
	t.Helper()
	at := map[int64]string{}
	for i, p := range answers {
		wantOK(t, fmt.Sprintf("%s: producer %d", what, i), p.ErrorCode)
		at[p.BaseOffset] = fmt.Sprintf("p%03d-%d", i, seq)
	}
	for o := from; o < from+int64(len(answers)); o++ {
		if _, ok := at[o]; !ok {
			t.Fatalf("%s: no batch at offset %d (offsets %v)", what, o, slices.Sorted(maps.Keys(at)))
		}
	}
	return at
}

// fanIn idempotent producers write one batch each into one flush of one partition: the flush
// commits (its producer states take more than one Txn), offsets are dense; after a failover the new
// leader answers each retried batch with its original offset, and the next round commits again.
func TestFanInProducersOneFlush(t *testing.T) {
	tc := newTestCluster(t)
	a1 := fanInAgent(t, tc, "a1")
	c := ledTopicConn(t, a1, "fanin")
	pids, epochs := make([]int64, fanIn), make([]int16, fanIn)
	for i := range pids {
		pids[i], epochs[i] = c.initProducerID()
	}
	first := wantDense(t, "first round", fanInRound(t, fanInConns(t, a1), "fanin", pids, epochs, 0), 0, 0)

	if err := a1.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	a2 := fanInAgent(t, tc, "a2")
	tp := topicTP(t, a2, "fanin", 0)
	waitFor(t, "a2 to lead the partition", func() bool { return a2.lead.leaders.get(tp) != nil })
	conns := fanInConns(t, a2)
	for i, p := range fanInRound(t, conns, "fanin", pids, epochs, 0) {
		wantOK(t, fmt.Sprintf("retry of producer %d's batch", i), p.ErrorCode)
		if first[p.BaseOffset] != fmt.Sprintf("p%03d-0", i) {
			t.Fatalf("retry of producer %d's batch answered at offset %d, which holds %q", i, p.BaseOffset, first[p.BaseOffset])
		}
	}
	second := wantDense(t, "second round", fanInRound(t, conns, "fanin", pids, epochs, 1), fanIn, 1)

	var want []string
	for o := range int64(2 * fanIn) {
		if v, ok := first[o]; ok {
			want = append(want, v)
		} else {
			want = append(want, second[o])
		}
	}
	checkLog(t, a2, "fanin", 0, want)
}

// A commit whose outcome is unknown (etcd timed out): the produce is "maybe written", and the partition
// is led again only under a new epoch, so that no attempt of the failed commit can apply.
func TestUnknownCommitRenewsEpoch(t *testing.T) {
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	c := ledTopicConn(t, a, "renew")
	tp := topicTP(t, a, "renew", 0)
	before := a.lead.leaders.get(tp)

	var fired atomic.Bool
	h.setCommit(func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		if fired.CompareAndSwap(false, true) {
			return failAll(commits, fmt.Errorf("injected: %w", context.DeadlineExceeded))
		}
		return next()
	})
	p := c.produceOne("renew", 0, valueBatch(-1, -1, -1, nil, "lost"))
	wantCode(t, "produce whose commit's outcome is unknown", p.ErrorCode, kerr.RequestTimedOut)
	waitFor(t, "the partition to be led again", func() bool {
		pl := a.lead.leaders.get(tp)
		return pl != nil && pl != before
	})
	if pl := a.lead.leaders.get(tp); pl.epoch == before.epoch {
		t.Fatalf("led again at epoch %d, the epoch of the commit of unknown outcome", pl.epoch)
	}
	wantOK(t, "produce under the new epoch", c.produceOne("renew", 0, valueBatch(-1, -1, -1, nil, "after")).ErrorCode)
	checkLog(t, a, "renew", 0, []string{"after"})
}
