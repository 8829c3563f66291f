package coord

import (
	"errors"
	"testing"
)

// Pending offsets of a transaction are stored per producer, loaded with their group, moved into the
// offsets by a resolution guarded by the transaction's state (refused, changing nothing, once that
// state moved on), and deleted with the group.
func TestGroupPendingOffsets(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	f, data := groupShard(t, c)
	tv, err := c.WriteTxn(ctx, f, "default", "tx", txnMeta(TxnOngoing, data.TP(0)), 0)
	if err != nil {
		t.Fatal(err)
	}
	pending := []PendingOffsets{
		{ProducerID: 1000, Epoch: 3, Offsets: []GroupOffset{groupOffset(data, 0, 50), groupOffset(data, 1, 60)}},
		{ProducerID: 1001, Epoch: 0, Offsets: []GroupOffset{groupOffset(data, 2, 70)}},
	}
	v, err := c.WriteGroup(ctx, f, "default", "g", GroupWrite{Meta: &GroupMeta{State: "Empty"}, Offsets: []GroupOffset{groupOffset(data, 0, 10)}, Pending: pending})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.LoadGroup(ctx, "default", "g")
	if err != nil || len(g.Offsets) != 1 || mustJSON(t, g.Pending) != mustJSON(t, pending) {
		t.Fatalf("loaded %+v, %v", g, err)
	}
	all, err := c.LoadGroups(ctx, "default", func(string) bool { return true })
	if err != nil || len(all) != 1 || mustJSON(t, all[0].Pending) != mustJSON(t, pending) {
		t.Fatalf("loaded all: %+v, %v", all, err)
	}

	// The transaction moved on (say, a new coordinator completed it): a late marker changes nothing.
	stale := TxnGuard{NS: "default", ID: "tx", Version: tv}
	tv2, err := c.WriteTxn(ctx, f, "default", "tx", txnMeta(TxnPrepareCommit, data.TP(0)), tv)
	if err != nil {
		t.Fatal(err)
	}
	resolve := GroupWrite{Offsets: pending[0].Offsets, DeletePending: []int64{1000}, Version: v, Txn: &stale}
	if _, err := c.WriteGroup(ctx, f, "default", "g", resolve); !errors.Is(err, ErrTxnChanged) {
		t.Fatalf("resolution on a stale transaction state: %v, want ErrTxnChanged", err)
	}
	if g, err := c.LoadGroup(ctx, "default", "g"); err != nil || g.Version != v || len(g.Pending) != 2 || g.Offsets[0].Offset != 10 {
		t.Fatalf("after the refused resolution: %+v, %v", g, err)
	}
	resolve.Txn = &TxnGuard{NS: "default", ID: "tx", Version: tv2}
	if v, err = c.WriteGroup(ctx, f, "default", "g", resolve); err != nil {
		t.Fatal(err)
	}
	g, err = c.LoadGroup(ctx, "default", "g")
	if err != nil || len(g.Offsets) != 2 || len(g.Pending) != 1 || g.Pending[0].ProducerID != 1001 {
		t.Fatalf("after the resolution: %+v, %v", g, err)
	}
	for _, o := range g.Offsets {
		if o.Partition == 0 && o.Offset != 50 {
			t.Fatalf("partition 0 at %d after the commit's resolution, want 50", o.Offset)
		}
	}
	if _, err := c.WriteGroup(ctx, f, "default", "g", GroupWrite{Pending: pending[1:], DeletePending: []int64{1001}, Version: v}); err == nil {
		t.Fatal("pending offsets of one producer both written and deleted: accepted")
	}
	if _, err := c.WriteGroup(ctx, f, "default", "g", GroupWrite{Delete: true, Version: v}); err != nil {
		t.Fatal(err)
	}
	if g, err := c.LoadGroup(ctx, "default", "g"); err != nil || g.Meta != nil || len(g.Pending) != 0 {
		t.Fatalf("after the group's deletion: %+v, %v", g, err)
	}
}
