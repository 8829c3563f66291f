package coord

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A group write of more operations than one Txn takes is split; here its second Txn is refused
// (etcd out of space) after the first applied. WriteGroup fails while part of it applied: this pins
// down what makes that harmless (see WriteGroup):
//   - what applied is a prefix of the write, metadata first, each offset exactly as asked;
//   - the writer, whose state is based on the version before the write, can write nothing more on
//     it (ErrGroupChanged): it must reload, and then sees exactly what applied;
//   - the same write sent again from the reloaded state applies the rest.
func TestGroupWriteSplitPartialApply(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 3 }) // 2 group operations per Txn
	f, data := groupShard(t, c)
	v0, err := c.WriteGroup(ctx, f, "default", "g", GroupWrite{Meta: &GroupMeta{State: "Empty"}, Offsets: []GroupOffset{
		groupOffset(data, 0, 1), groupOffset(data, 1, 1), groupOffset(data, 2, 1), groupOffset(data, 3, 1)}})
	if err != nil {
		t.Fatal(err)
	}

	var txns atomic.Int32
	c.txnHook = func(actx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		if txns.Add(1) == 2 {
			return nil, rpctypes.ErrGRPCNoSpace
		}
		return do(actx)
	}
	w := GroupWrite{Meta: &GroupMeta{State: "Empty", Generation: 7}, Version: v0}
	for p := range int32(4) {
		w.Offsets = append(w.Offsets, groupOffset(data, p, 10+int64(p)))
	}
	if _, err := c.WriteGroup(ctx, f, "default", "g", w); err == nil { // 5 operations: 3 Txns
		t.Fatal("group write whose second Txn was refused succeeded")
	}
	c.txnHook = nil
	if n := txns.Load(); n != 2 {
		t.Fatalf("%d Txns sent, want 2 (the third is not sent after the second failed)", n)
	}

	g, err := admin.LoadGroup(ctx, "default", "g")
	if err != nil {
		t.Fatal(err)
	}
	if g.Meta == nil || g.Meta.Generation != 7 || g.Version == v0 {
		t.Fatalf("after the first Txn: metadata %+v, version %d (was %d); want generation 7, a new version", g.Meta, g.Version, v0)
	}
	slices.SortFunc(g.Offsets, func(a, b GroupOffset) int { return int(a.Partition - b.Partition) })
	want := []int64{10, 1, 1, 1} // the first Txn: metadata and partition 0
	for i, o := range g.Offsets {
		if o != groupOffset(data, int32(i), want[i]) {
			t.Fatalf("offset %d after a partial write: %+v, want %d as committed", i, o, want[i])
		}
	}

	if _, err := c.WriteGroup(ctx, f, "default", "g", GroupWrite{Offsets: w.Offsets[:1], Version: v0}); !errors.Is(err, ErrGroupChanged) {
		t.Fatalf("write on the version before the partial write: %v, want ErrGroupChanged", err)
	}
	w.Version = g.Version
	v, err := c.WriteGroup(ctx, f, "default", "g", w)
	if err != nil {
		t.Fatalf("the write sent again from the reloaded state: %v", err)
	}
	g, err = admin.LoadGroup(ctx, "default", "g")
	if err != nil || g.Version != v || len(g.Offsets) != 4 {
		t.Fatalf("group after the retry: %+v, %v", g, err)
	}
	for _, o := range g.Offsets {
		if o.Offset != 10+int64(o.Partition) {
			t.Fatalf("offset after the retry: %+v", o)
		}
	}
}
