package coord

import (
	"errors"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// markerEntries lists the marker entries of every commit record, straight from etcd.
func markerEntries(t *testing.T, c *Client) []RecordEntry {
	t.Helper()
	resp, err := c.Etcd().Get(testCtx(t), c.keys.commit(""), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	var out []RecordEntry
	for _, kv := range resp.Kvs {
		if !strings.HasPrefix(string(kv.Key), c.keys.commit("")) {
			continue
		}
		r, err := decodeRecord(kv.Value)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range r.Entries {
			if e.Marker != nil {
				out = append(out, e)
			}
		}
	}
	return out
}

// A transaction's markers commit only while its key is at the Prepare write's version and each
// partition's leader key at the leader's epoch: a stale guard writes nothing (ErrTxnChanged), a
// fenced partition is ErrFenced while the others of its Txn are committed in a Txn of their own, and
// an attempt applied whose answer was lost counts as committed, once.
func TestCommitMarkers(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	f, data := groupShard(t, c)
	tp0, tp1, tp2 := data.TP(0), data.TP(1), data.TP(2)
	prepare, err := c.WriteTxn(ctx, f, "default", "tx", txnMeta(TxnPrepareCommit, tp0, tp1, tp2), 0)
	if err != nil {
		t.Fatal(err)
	}
	lc := te.client(t)
	s := newSession(t, lc, "leader", "127.0.0.1:2")
	l0, l1, l2 := lead(t, s, tp0), lead(t, s, tp1), lead(t, s, tp2)
	if err := s.Commit(ctx, []Commit{{TP: tp0, Epoch: l0.Rev, Entry: withEpoch(entry(0, 10, 100), l0)}})[0]; err != nil {
		t.Fatal(err)
	}
	mk := TxnMarker{ProducerID: 1000, Epoch: 3, Commit: true, CoordinatorEpoch: 7, FirstOffset: -1}
	guard := TxnGuard{NS: "default", ID: "tx", Version: prepare}
	attempts := loseFirstAnswers(lc)
	errs := s.CommitMarkers(ctx, guard, []MarkerCommit{
		{TP: tp0, Epoch: l0.Rev, Offset: 10, LeaderEpoch: int64(l0.Epoch), Time: 5, Marker: mk},
		{TP: tp1, Epoch: l1.Rev, Offset: 0, LeaderEpoch: int64(l1.Epoch), Time: 5, Marker: mk},
	})
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("markers whose answer was lost: %v", errs)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	lc.txnHook = nil
	got := markerEntries(t, c)
	if len(got) != 2 {
		t.Fatalf("%d marker entries, want 2: %+v", len(got), got)
	}
	for _, e := range got {
		if *e.Marker != (TxnMarker{ProducerID: 1000, Epoch: 3, Commit: true, CoordinatorEpoch: 7, TxnVersion: prepare, FirstOffset: -1}) ||
			e.Entry.BaseOffset != e.Entry.LastOffset || e.Entry.MaxTimestamp != 5 {
			t.Fatalf("marker entry %+v: %+v", e, *e.Marker)
		}
	}
	if b := indexBases(t, c, tp0); len(b) != 2 || b[1].BaseOffset != 10 || b[1].LastOffset != 10 {
		t.Fatalf("index of %s: %+v", tp0, b)
	}
	// A view (a new leader's too) knows the marker: its entry, and its revision in the producer's
	// state, so that the marker sent again is found written.
	k := runCache(t, c, nil)
	if err := k.WaitRevision(ctx, prepare); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the marker in the view", func() bool {
		es := k.Entries(tp1, 0, 1<<20)
		return len(es) == 1 && es[0].Marker != nil && es[0].Marker.TxnVersion == prepare
	})
	st, _ := k.PartitionState(tp1)
	if len(st.Producers) != 1 || st.Producers[0].ID != 1000 || st.Producers[0].Epoch != 3 || st.Producers[0].MarkerRev != prepare {
		t.Fatalf("producers of %s after a marker: %+v", tp1, st.Producers)
	}

	// A partition fenced: ErrFenced; the other of its Txn is committed.
	errs = s.CommitMarkers(ctx, guard, []MarkerCommit{
		{TP: tp1, Epoch: l1.Rev + 1000, Offset: 1, Time: 5, Marker: mk},
		{TP: tp2, Epoch: l2.Rev, Offset: 0, Time: 5, Marker: mk},
	})
	if !errors.Is(errs[0], ErrFenced) || errs[1] != nil {
		t.Fatalf("a fenced marker and another: %v", errs)
	}
	if n := len(markerEntries(t, c)); n != 3 {
		t.Fatalf("%d marker entries, want 3", n)
	}

	// The transaction moved on (CompleteCommit): a late marker writes nothing.
	if _, err := c.WriteTxn(ctx, f, "default", "tx", txnMeta(TxnCompleteCommit, tp0, tp1, tp2), prepare); err != nil {
		t.Fatal(err)
	}
	errs = s.CommitMarkers(ctx, guard, []MarkerCommit{{TP: tp1, Epoch: l1.Rev, Offset: 1, Time: 5, Marker: mk}})
	if !errors.Is(errs[0], ErrTxnChanged) {
		t.Fatalf("a marker after the transaction completed: %v, want ErrTxnChanged", errs[0])
	}
	if n := len(markerEntries(t, c)); n != 3 {
		t.Fatalf("%d marker entries after a late marker, want 3", n)
	}
	// Refused before etcd: a partition twice, no guard.
	errs = s.CommitMarkers(ctx, guard, []MarkerCommit{{TP: tp1, Epoch: l1.Rev, Offset: 1, Marker: mk}, {TP: tp1, Epoch: l1.Rev, Offset: 2, Marker: mk}})
	if !errors.Is(errs[0], ErrTxnChanged) || errs[1] == nil || !strings.Contains(errs[1].Error(), "twice") {
		t.Fatalf("a partition twice: %v", errs)
	}
	if errs := s.CommitMarkers(ctx, TxnGuard{NS: "default", ID: "tx"}, []MarkerCommit{{TP: tp1, Epoch: l1.Rev, Offset: 1, Marker: mk}}); errs[0] == nil {
		t.Fatal("markers without a guard version committed")
	}
}
