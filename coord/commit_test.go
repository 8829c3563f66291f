package coord

import (
	"errors"
	"math"
	"testing"
)

// indexBases lists the entries committed for tp, straight from etcd.
func indexBases(t *testing.T, c *Client, tp TP) []IndexEntry {
	t.Helper()
	st, _, err := c.loadState(testCtx(t), c.log)
	if err != nil {
		t.Fatal(err)
	}
	if p := st.parts[tp]; p != nil {
		return p.read(0, math.MaxInt64)
	}
	return nil
}

// lead takes tp's leadership for s.
func lead(t *testing.T, s *Session, tp TP) Leadership {
	t.Helper()
	l, err := s.Acquire(testCtx(t), tp, EpochHint{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// withEpoch is e as the leader l commits it: recording l's client epoch.
func withEpoch(e IndexEntry, l Leadership) IndexEntry {
	e.Epoch = int64(l.Epoch)
	return e
}

func TestFencingAfterLeaseExpiry(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	top := newTopic(t, admin, "fenced", 1)
	tp := top.TP(0)
	k := runCache(t, admin, nil)

	a := newSession(t, te.client(t), "a", "127.0.0.1:1")
	lA := lead(t, a, tp)
	if err := a.Commit(ctx, []Commit{{TP: tp, Epoch: lA.Rev, Entry: withEpoch(entry(0, 10, 100), lA)}})[0]; err != nil {
		t.Fatal(err)
	}

	// A stalls; its lease expires (simulated by revoking it); B takes over.
	if _, err := admin.Etcd().Revoke(ctx, a.LeaseID()); err != nil {
		t.Fatal(err)
	}
	b := newSession(t, te.client(t), "b", "127.0.0.1:2")
	lB, err := b.Acquire(ctx, tp, k.EpochHint(tp))
	if err != nil || lB.Rev <= lA.Rev || lB.Epoch != lA.Epoch+1 {
		t.Fatalf("B Acquire = %+v, %v; want past %+v", lB, err, lA)
	}
	if next, _ := loadPartition(t, b.c, tp); next != 10 {
		t.Fatalf("next offset %d, want 10", next)
	}
	if err := b.Commit(ctx, []Commit{{TP: tp, Epoch: lB.Rev, Entry: withEpoch(entry(10, 5, 50), lB)}})[0]; err != nil {
		t.Fatal(err)
	}

	// The zombie wakes up and commits what it had sequenced, at offsets B already used.
	zombie := []Commit{{TP: tp, Epoch: lA.Rev, Entry: entry(10, 10, 100)}, {TP: tp, Epoch: lA.Rev, Entry: entry(20, 1, 10)}}
	for i, err := range a.Commit(ctx, zombie) {
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie commit %d: %v, want ErrFenced", i, err)
		}
	}
	if got := counterValue(t, a.c.metrics.fenced); got != 2 {
		t.Fatalf("fenced commits counted %v, want 2", got)
	}

	if next, _ := loadPartition(t, admin, tp); next != 15 {
		t.Fatalf("next offset %d, want 15", next)
	}
	entries := indexBases(t, admin, tp)
	if len(entries) != 2 || entries[0].Epoch != int64(lA.Epoch) || entries[1].Epoch != int64(lB.Epoch) ||
		entries[1].BaseOffset != 10 || entries[1].Bytes != 50 {
		t.Fatalf("index = %+v", entries)
	}
	syncCache(t, k)
	if hwm := k.HighWatermark(tp); hwm != 15 {
		t.Fatalf("cache high watermark %d, want 15", hwm)
	}
	got := k.Entries(tp, 0, math.MaxInt64)
	if len(got) != 2 || got[1].Epoch != int64(lB.Epoch) {
		t.Fatalf("cache entries %+v", got)
	}
	if l, ok := k.Leader(tp); !ok || l.Agent != "b" || l.Rev != lB.Rev || l.Epoch != lB.Epoch {
		t.Fatalf("cache leader = %+v %v", l, ok)
	}
}

func TestCommitStaleEpochAfterReacquire(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	tp := newTopic(t, c, "t", 1).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	e1 := acquire(t, s, tp)
	if err := s.Resign(ctx, tp, e1); err != nil {
		t.Fatal(err)
	}
	e2, err := rev(s.Acquire(ctx, tp, EpochHint{}))
	if err != nil || e2 <= e1 {
		t.Fatalf("re-Acquire = %d, %v", e2, err)
	}
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: e1, Entry: entry(0, 1, 1)}})[0]; !errors.Is(err, ErrFenced) {
		t.Fatalf("commit at the old epoch: %v, want ErrFenced", err)
	}
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: e2, Entry: entry(0, 1, 1)}})[0]; err != nil {
		t.Fatalf("commit at the current epoch: %v", err)
	}
}

func TestCommitPacking(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 128 })
	const n = 300
	s := newSession(t, c, "a", "127.0.0.1:1")
	top, epochs := leadWide(t, c, s, "wide", n)
	flush := func(base int64) []Commit { return wideFlush(top, epochs, base) }

	ok0 := counterValue(t, c.metrics.txns.WithLabelValues(resultOK))
	records0 := recordCount(t, c)
	for p, err := range s.Commit(ctx, flush(0)) {
		if err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
	}
	// 300 partitions × 1 compare: Txns of 127 partitions and their record's compare; one record each.
	txns := counterValue(t, c.metrics.txns.WithLabelValues(resultOK)) - ok0
	if want := math.Ceil(n / 127.0); txns != want || float64(recordCount(t, c)-records0) != want {
		t.Fatalf("%v Txns and %d records for %d partitions, want %v", txns, recordCount(t, c)-records0, n, want)
	}
	checkWide(t, c, top, n, 2)

	// Ten partitions change hands; the next flush is fenced for exactly those ten.
	other := newSession(t, te.client(t), "b", "127.0.0.1:2")
	fenced := map[int]bool{}
	for p := 5; p < n; p += 30 {
		if err := s.Resign(ctx, top.TP(int32(p)), epochs[p]); err != nil {
			t.Fatal(err)
		}
		acquire(t, other, top.TP(int32(p)))
		fenced[p] = true
	}
	for p, err := range s.Commit(ctx, flush(2)) {
		if fenced[p] != errors.Is(err, ErrFenced) {
			t.Fatalf("partition %d (moved: %v): %v", p, fenced[p], err)
		}
		if !fenced[p] && err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
	}
	if got := counterValue(t, c.metrics.fenced); got != float64(len(fenced)) {
		t.Fatalf("fenced commits counted %v, want %d", got, len(fenced))
	}
	st, _, err := c.loadState(ctx, c.log)
	if err != nil {
		t.Fatal(err)
	}
	for p := range n {
		if want := map[bool]int64{true: 2, false: 4}[fenced[p]]; st.parts[top.TP(int32(p))].hwm != want {
			t.Fatalf("partition %d: next %d, want %d", p, st.parts[top.TP(int32(p))].hwm, want)
		}
	}
}

// A commit's cost does not depend on how many idempotent producers it carries: the batches travel in
// the commit record, not as a key each, so a partition with hundreds of producers in one flush still
// commits in a Txn of a handful of operations.
func TestCommitEdgeCases(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 16 })
	top := newTopic(t, c, "edge", 2)
	s := newSession(t, c, "a", "127.0.0.1:1")
	e0, e1 := acquire(t, s, top.TP(0)), acquire(t, s, top.TP(1))

	many := make([]ProducerBatch, 200) // 200 producers, one batch each
	for i := range many {
		many[i] = ProducerBatch{ID: int64(1000 + i), FirstOffset: int64(i), LastOffset: int64(i)}
	}
	batch := func(id int64, seq int32, offset int64) []ProducerBatch {
		return []ProducerBatch{{ID: id, FirstSeq: seq, LastSeq: seq, FirstOffset: offset, LastOffset: offset}}
	}
	errs := s.Commit(ctx, []Commit{
		{TP: top.TP(0), Epoch: e0, Entry: entry(0, 200, 1), Batches: many},
		{TP: top.TP(1), Epoch: e1, Entry: entry(0, 1, 1), Batches: batch(7, 0, 0)},
		// Same partition twice in one call: one atomic unit, in one record.
		{TP: top.TP(1), Epoch: e1, Entry: entry(1, 1, 1), Batches: batch(7, 1, 1)},
		{TP: top.TP(1), Epoch: e1, Entry: IndexEntry{BaseOffset: 5, LastOffset: 4}},
		{TP: top.TP(1), Epoch: e1, Entry: entry(1, 1, 1)},                          // same base again
		{TP: top.TP(1), Epoch: e1, Entry: entry(2, 1, 1), Batches: batch(7, 2, 5)}, // batch outside its entry
	})
	for i, err := range errs[:3] {
		if err != nil {
			t.Fatalf("valid commit %d: %v", i, err)
		}
	}
	for i, err := range errs[3:] {
		if err == nil {
			t.Fatalf("invalid commit %d accepted", i+3)
		}
	}
	if next, producers := loadPartition(t, c, top.TP(0)); next != 200 || len(producers) != 200 {
		t.Fatalf("partition 0: next %d, %d producers; want 200 and 200", next, len(producers))
	}
	next, producers := loadPartition(t, c, top.TP(1))
	if next != 2 || len(producers) != 1 || len(producers[0].Batches) != 2 || producers[0].Batches[1].FirstSeq != 1 {
		t.Fatalf("partition 1: next %d, producers %+v", next, producers)
	}
	if errs := s.Commit(ctx, nil); len(errs) != 0 {
		t.Fatalf("empty commit: %v", errs)
	}
}

// Offsets are unique because a leader never sequences twice under one epoch (docs/INTERNALS.md); if
// that were broken, the view would keep the first entry at an offset and refuse the second, logged as
// corruption, rather than serve two records at one offset.
func TestViewRefusesASecondEntryAtAnOffset(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	tp := newTopic(t, c, "t", 2).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch := acquire(t, s, tp)
	k := runCache(t, c, nil)
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 4, 1)}})[0]; err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 1, 2)}})[0]; err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	if got := k.Entries(tp, 0, math.MaxInt64); len(got) != 1 || got[0].LastOffset != 3 || k.HighWatermark(tp) != 4 {
		t.Fatalf("view after a second entry at offset 0: %+v, hwm %d", got, k.HighWatermark(tp))
	}
	if got := indexBases(t, c, tp); len(got) != 1 || got[0].LastOffset != 3 {
		t.Fatalf("a fresh load after a second entry at offset 0: %+v", got)
	}
}
