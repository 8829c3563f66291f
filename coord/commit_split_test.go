package coord

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// splitFixture is a partition whose commits of many producers take several Txns (MaxTxnOps 8: 8
// producer states per Txn), led by s.
type splitFixture struct {
	t     *testing.T
	c     *Client
	s     *Session
	tp    TP
	epoch int64
}

func newSplitFixture(t *testing.T) *splitFixture {
	te := newTestEtcd(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 8 })
	top := newTopic(t, c, "split", 1)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := s.Acquire(testCtx(t), top.TP(0))
	if err != nil {
		t.Fatal(err)
	}
	return &splitFixture{t: t, c: c, s: s, tp: top.TP(0), epoch: epoch}
}

// round is a commit at base of one record for each of ids, each at sequence seq, after prior.
func (f *splitFixture) round(base int64, ids []int64, seq int32, prior map[int64]ProducerState) Commit {
	cm := Commit{TP: f.tp, Epoch: f.epoch, Entry: entry(base, int64(len(ids)), 1), Prior: prior}
	for i, id := range ids {
		st := ProducerState{ID: id}
		if p, ok := prior[id]; ok {
			st.Batches = append(st.Batches, p.Batches...)
		}
		o := base + int64(i)
		st.Batches = append(st.Batches, SeqBatch{FirstSeq: seq, LastSeq: seq, FirstOffset: o, LastOffset: o})
		cm.Producers = append(cm.Producers, st)
	}
	return cm
}

// stored reads the producer states as etcd holds them, by id.
func (f *splitFixture) stored() map[int64]ProducerState {
	f.t.Helper()
	resp, err := f.c.Etcd().Get(testCtx(f.t), f.c.keys.partProducers(f.tp), clientv3.WithPrefix())
	if err != nil {
		f.t.Fatal(err)
	}
	out := map[int64]ProducerState{}
	for _, kv := range resp.Kvs {
		var p ProducerState
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			f.t.Fatal(err)
		}
		out[p.ID] = p
	}
	return out
}

func ids(from, n int64) []int64 {
	var out []int64
	for i := range n {
		out = append(out, from+i)
	}
	return out
}

// byID indexes states by producer id.
func byID(states []ProducerState) map[int64]ProducerState {
	out := map[int64]ProducerState{}
	for _, p := range states {
		out[p.ID] = p
	}
	return out
}

// firstRound commits 20 producers at offsets 0..19 in steps and returns their states.
func (f *splitFixture) firstRound() map[int64]ProducerState {
	f.t.Helper()
	cm := f.round(0, ids(0, 20), 0, nil)
	if err := f.s.Commit(testCtx(f.t), []Commit{cm})[0]; err != nil {
		f.t.Fatalf("commit of 20 producers in steps: %v", err)
	}
	if n := counterValue(f.t, f.c.metrics.splits); n != 1 {
		f.t.Fatalf("streamhouse_etcd_split_commits_total = %v, want 1", n)
	}
	for id, st := range f.stored() {
		if !st.Pending || st.Prev != nil {
			f.t.Fatalf("producer %d stored as %+v: want pending, with no prior state", id, st)
		}
	}
	next, producers, err := f.c.LoadPartition(testCtx(f.t), f.tp)
	if err != nil || next != 20 || len(producers) != 20 {
		f.t.Fatalf("LoadPartition = %d, %d producers, %v; want 20, 20", next, len(producers), err)
	}
	for _, p := range producers {
		if p.Pending || p.Prev != nil || len(p.Batches) != 1 {
			f.t.Fatalf("loaded %+v: want the committed state, not pending", p)
		}
	}
	return byID(producers)
}

// The index step of a split commit never applies (refused, as by a crash between the steps): the
// commit fails and asks for a new epoch; a loader sees the partition as before it, its producers at
// their prior states (a producer new in it has none), and sets them back in etcd; a late attempt of
// the index step, under the old epoch, cannot apply any more; the next commit goes on at the same base.
func TestSplitCommitIndexNeverApplied(t *testing.T) {
	f := newSplitFixture(t)
	ctx := testCtx(t)
	prior := f.firstRound()

	var txns atomic.Int32
	var late func(context.Context) (*clientv3.TxnResponse, error)
	f.c.txnHook = func(actx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		if txns.Add(1) == 4 { // 24 states in 3 Txns of 8, then the index: hold it back
			late = do
			return nil, rpctypes.ErrGRPCNoSpace // not sent again: etcd's NOSPACE alarm went off between the steps
		}
		return do(actx)
	}
	second := f.round(20, append(ids(0, 20), ids(100, 4)...), 1, prior)
	err := f.s.Commit(ctx, []Commit{second})[0]
	f.c.txnHook = nil
	if !errors.Is(err, ErrRenewEpoch) || errors.Is(err, ErrFenced) {
		t.Fatalf("split commit whose index step failed: %v, want ErrRenewEpoch", err)
	}
	if late == nil {
		t.Fatal("the index step was never sent")
	}
	if st := f.stored(); !st[100].Pending || !st[0].Pending || st[0].Prev == nil {
		t.Fatalf("states after the failed commit: %+v, %+v; want pending, with priors", st[100], st[0])
	}

	wantPrior := func(what string, producers []ProducerState) {
		t.Helper()
		got := byID(producers)
		if len(got) != 20 {
			t.Fatalf("%s: %d producers, want the 20 committed ones", what, len(got))
		}
		for id, p := range got {
			if len(p.Batches) != 1 || p.Batches[0] != prior[id].Batches[0] || p.Pending || p.Prev != nil {
				t.Fatalf("%s: producer %d at %+v, want its prior %+v", what, id, p, prior[id])
			}
		}
	}
	next, producers, err := f.c.LoadPartition(ctx, f.tp)
	if err != nil || next != 20 {
		t.Fatalf("LoadPartition = %d, %v; want 20", next, err)
	}
	wantPrior("read-only load", producers)

	// The leader renews its epoch (coord.ErrRenewEpoch), then loads as a leader does.
	if err := f.s.Resign(ctx, f.tp, f.epoch); err != nil {
		t.Fatal(err)
	}
	old := f.epoch
	if f.epoch, err = f.s.Acquire(ctx, f.tp); err != nil || f.epoch == old {
		t.Fatalf("acquire after resign: epoch %d (was %d), %v", f.epoch, old, err)
	}
	next, producers, err = f.s.LoadPartition(ctx, f.tp, f.epoch)
	if err != nil || next != 20 {
		t.Fatalf("leader's LoadPartition = %d, %v; want 20", next, err)
	}
	wantPrior("leader's load", producers)
	stored := f.stored()
	if len(stored) != 20 {
		t.Fatalf("%d producer states left in etcd, want the 20 committed (the new ones deleted)", len(stored))
	}
	for id, p := range stored {
		if p.Pending || p.Prev != nil || len(p.Batches) != 1 || p.Batches[0] != prior[id].Batches[0] {
			t.Fatalf("producer %d stored as %+v after the load, want its prior %+v", id, p, prior[id])
		}
	}

	resp, err := late(ctx)
	if err != nil || resp.Succeeded {
		t.Fatalf("late index step under the old epoch: applied %v, %v; want refused", resp != nil && resp.Succeeded, err)
	}
	third := f.round(20, ids(0, 20), 1, byID(producers))
	if err := f.s.Commit(ctx, []Commit{third})[0]; err != nil {
		t.Fatalf("commit at the same base under the new epoch: %v", err)
	}
	if next, producers, err := f.c.LoadPartition(ctx, f.tp); err != nil || next != 40 || len(producers) != 20 {
		t.Fatalf("LoadPartition = %d, %d producers, %v; want 40, 20", next, len(producers), err)
	}
}

// The index step of a split commit applies but its answer is lost: the commit's outcome is unknown
// to the leader, and a loader finds it committed, every producer at its new state.
func TestSplitCommitAppliedAnswerLost(t *testing.T) {
	f := newSplitFixture(t)
	ctx := testCtx(t)
	prior := f.firstRound()

	var txns atomic.Int32
	f.c.txnHook = func(actx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		resp, err := do(actx)
		if txns.Add(1) == 4 { // the index step: applied, but its answer is an error not sent again
			return nil, rpctypes.ErrGRPCNoSpace
		}
		return resp, err
	}
	second := f.round(20, append(ids(0, 20), ids(100, 4)...), 1, prior)
	err := f.s.Commit(ctx, []Commit{second})[0]
	f.c.txnHook = nil
	if !errors.Is(err, ErrRenewEpoch) || errors.Is(err, ErrFenced) || errors.Is(err, ErrOffsetConflict) {
		t.Fatalf("split commit whose answer was lost: %v, want an unknown outcome (ErrRenewEpoch)", err)
	}
	next, producers, err := f.s.LoadPartition(ctx, f.tp, f.epoch)
	if err != nil || next != 44 || len(producers) != 24 {
		t.Fatalf("LoadPartition = %d, %d producers, %v; want 44, 24", next, len(producers), err)
	}
	for _, p := range producers {
		last := p.Batches[len(p.Batches)-1]
		if p.Pending || last.FirstSeq != 1 || last.LastOffset < 20 {
			t.Fatalf("producer %d loaded as %+v, want its state of the applied commit", p.ID, p)
		}
	}
}

// An agent set to more operations than etcd takes (4096 against etcd's default 128) sends a fan-in
// commit of 300 producers as one Txn; etcd refuses it, the client falls back to 128, and the commit
// goes through in steps within the same call.
func TestSplitCommitAfterFallBack(t *testing.T) {
	te := etcdWithMaxTxnOps(t, DefaultMaxTxnOps)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 4096 })
	top := newTopic(t, c, "fallback", 1)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := s.Acquire(testCtx(t), top.TP(0))
	if err != nil {
		t.Fatal(err)
	}
	f := &splitFixture{t: t, c: c, s: s, tp: top.TP(0), epoch: epoch}
	if err := s.Commit(testCtx(t), []Commit{f.round(0, ids(0, 300), 0, nil)})[0]; err != nil {
		t.Fatalf("commit of 300 producers against etcd's 128 operations: %v", err)
	}
	if c.maxTxnOps() != DefaultMaxTxnOps || counterValue(t, c.metrics.splits) != 1 {
		t.Fatalf("limit %d, split commits %v; want a fall-back to %d and one split commit", c.maxTxnOps(), counterValue(t, c.metrics.splits), DefaultMaxTxnOps)
	}
	next, producers, err := c.LoadPartition(testCtx(t), f.tp)
	if err != nil || next != 300 || len(producers) != 300 {
		t.Fatalf("LoadPartition = %d, %d producers, %v; want 300, 300", next, len(producers), err)
	}
}
