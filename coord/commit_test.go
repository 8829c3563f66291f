package coord

import (
	"errors"
	"math"
	"testing"
)

// indexBases lists the base offsets committed for tp, straight from etcd.
func indexBases(t *testing.T, c *Client, tp TP) []IndexEntry {
	t.Helper()
	var out []IndexEntry
	k := c.NewCache(nil)
	st, _, err := k.load(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if p := st.parts[tp]; p != nil {
		out = p.entries
	}
	return out
}

func TestFencingAfterLeaseExpiry(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	top := newTopic(t, admin, "fenced", 1)
	tp := top.TP(0)
	k := runCache(t, admin, nil)

	a := newSession(t, te.client(t), "a", "127.0.0.1:1")
	eA, err := a.Acquire(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx, []Commit{{TP: tp, Epoch: eA, Entry: entry(0, 10, 100)}})[0]; err != nil {
		t.Fatal(err)
	}

	// A stalls; its lease expires (simulated by revoking it); B takes over.
	if _, err := admin.Etcd().Revoke(ctx, a.LeaseID()); err != nil {
		t.Fatal(err)
	}
	b := newSession(t, te.client(t), "b", "127.0.0.1:2")
	eB, err := b.Acquire(ctx, tp)
	if err != nil || eB <= eA {
		t.Fatalf("B Acquire = %d, %v; want > %d", eB, err, eA)
	}
	next, _, err := b.c.LoadPartition(ctx, tp)
	if err != nil || next != 10 {
		t.Fatalf("LoadPartition = %d, %v; want 10", next, err)
	}
	if err := b.Commit(ctx, []Commit{{TP: tp, Epoch: eB, Entry: entry(10, 5, 50)}})[0]; err != nil {
		t.Fatal(err)
	}

	// The zombie wakes up and commits what it had sequenced, at offsets B already used.
	zombie := []Commit{{TP: tp, Epoch: eA, Entry: entry(10, 10, 100)}, {TP: tp, Epoch: eA, Entry: entry(20, 1, 10)}}
	for i, err := range a.Commit(ctx, zombie) {
		if !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie commit %d: %v, want ErrFenced", i, err)
		}
	}
	if got := counterValue(t, a.c.metrics.fenced); got != 2 {
		t.Fatalf("fenced commits counted %v, want 2", got)
	}

	next, _, err = admin.LoadPartition(ctx, tp)
	if err != nil || next != 15 {
		t.Fatalf("LoadPartition = %d, %v; want 15", next, err)
	}
	entries := indexBases(t, admin, tp)
	if len(entries) != 2 || entries[0].Epoch != eA || entries[1].Epoch != eB || entries[1].BaseOffset != 10 || entries[1].Bytes != 50 {
		t.Fatalf("index = %+v", entries)
	}
	rev, err := admin.Etcd().Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRevision(ctx, rev.Header.Revision); err != nil {
		t.Fatal(err)
	}
	if hwm := k.HighWatermark(tp); hwm != 15 {
		t.Fatalf("cache high watermark %d, want 15", hwm)
	}
	got := k.Entries(tp, 0, math.MaxInt64)
	if len(got) != 2 || got[1].Epoch != eB {
		t.Fatalf("cache entries %+v", got)
	}
	if id, epoch, ok := k.Leader(tp); !ok || id != "b" || epoch != eB {
		t.Fatalf("cache leader = %q %d %v", id, epoch, ok)
	}
}

func TestCommitStaleEpochAfterReacquire(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	tp := newTopic(t, c, "t", 1).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	e1, err := s.Acquire(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Resign(ctx, tp, e1); err != nil {
		t.Fatal(err)
	}
	e2, err := s.Acquire(ctx, tp)
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
	for p, err := range s.Commit(ctx, flush(0)) {
		if err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
	}
	// 300 partitions × (1 index put + 1 producer put) = 600 puts: 5 Txns of at most 128.
	txns := counterValue(t, c.metrics.txns.WithLabelValues(resultOK)) - ok0
	if want := math.Ceil(2 * n / 128.0); txns < want || txns > want+1 {
		t.Fatalf("%v Txns for %d partitions, want about %v", txns, n, want)
	}
	for _, p := range []int32{0, 149, 299} {
		next, producers, err := c.LoadPartition(ctx, top.TP(p))
		if err != nil || next != 2 || len(producers) != 1 || producers[0].ID != int64(p) {
			t.Fatalf("partition %d: next %d, producers %+v, %v", p, next, producers, err)
		}
	}

	// Ten partitions change hands; the next flush is fenced for exactly those ten.
	other := newSession(t, te.client(t), "b", "127.0.0.1:2")
	fenced := map[int]bool{}
	for p := 5; p < n; p += 30 {
		if err := s.Resign(ctx, top.TP(int32(p)), epochs[p]); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Acquire(ctx, top.TP(int32(p))); err != nil {
			t.Fatal(err)
		}
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
	for p := range n {
		next, _, err := c.LoadPartition(ctx, top.TP(int32(p)))
		if err != nil {
			t.Fatal(err)
		}
		if want := map[bool]int64{true: 2, false: 4}[fenced[p]]; next != want {
			t.Fatalf("partition %d: next %d, want %d", p, next, want)
		}
	}
}

func TestCommitEdgeCases(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 16 })
	top := newTopic(t, c, "edge", 3)
	s := newSession(t, c, "a", "127.0.0.1:1")
	e0, _ := s.Acquire(ctx, top.TP(0))
	e1, _ := s.Acquire(ctx, top.TP(1))
	e2, _ := s.Acquire(ctx, top.TP(2))

	many := make([]ProducerState, 20) // 21 puts: more than a Txn of 16 takes, committed in steps
	for i := range many {
		many[i].ID = int64(i)
		many[i].Batches = []SeqBatch{{FirstOffset: 0, LastOffset: 0}}
	}
	pid := func(id int64, seq int32) []ProducerState {
		return []ProducerState{{ID: id, Batches: []SeqBatch{{FirstSeq: seq, LastSeq: seq}}}}
	}
	errs := s.Commit(ctx, []Commit{
		{TP: top.TP(0), Epoch: e0, Entry: entry(0, 1, 1), Producers: many},
		{TP: top.TP(1), Epoch: e1, Entry: entry(0, 1, 1), Producers: pid(7, 0)},
		// Same partition twice in one call, same producer: one atomic unit, the later state wins.
		{TP: top.TP(1), Epoch: e1, Entry: entry(1, 1, 1), Producers: pid(7, 1)},
		{TP: top.TP(1), Epoch: e1, Entry: IndexEntry{BaseOffset: 5, LastOffset: 4}},
		{TP: top.TP(1), Epoch: e1, Entry: entry(1, 1, 1)}, // same base again
	})
	if errs[0] != nil {
		t.Fatalf("commit of more producers than one Txn takes: %v", errs[0])
	}
	if errs[1] != nil || errs[2] != nil {
		t.Fatalf("valid commits: %v, %v", errs[1], errs[2])
	}
	if errs[3] == nil || errs[4] == nil {
		t.Fatalf("inverted offsets or duplicate base accepted: %v, %v", errs[3], errs[4])
	}
	next, producers, err := c.LoadPartition(ctx, top.TP(1))
	if err != nil || next != 2 || len(producers) != 1 || producers[0].Batches[0].FirstSeq != 1 {
		t.Fatalf("LoadPartition = %d %+v %v", next, producers, err)
	}
	if next, producers, err := c.LoadPartition(ctx, top.TP(0)); err != nil || next != 1 || len(producers) != len(many) {
		t.Fatalf("LoadPartition after a commit in steps = %d, %d producers, %v; want 1, %d", next, len(producers), err, len(many))
	}

	// 16 entries of one partition in one call compare 16 index keys and the leader key: more than a
	// Txn of 16 takes, even without producer states, and a partition's entries never straddle Txns.
	var entries []Commit
	for base := range int64(16) {
		entries = append(entries, Commit{TP: top.TP(2), Epoch: e2, Entry: entry(base, 1, 1)})
	}
	for i, err := range s.Commit(ctx, entries) {
		if err == nil || errors.Is(err, ErrFenced) {
			t.Fatalf("entry %d of a unit too large for a Txn: %v", i, err)
		}
	}
	if next, _, _ := c.LoadPartition(ctx, top.TP(2)); next != 0 {
		t.Fatalf("oversized commit left next = %d", next)
	}
	if errs := s.Commit(ctx, nil); len(errs) != 0 {
		t.Fatalf("empty commit: %v", errs)
	}
}

// A leader whose view is stale (an earlier commit with an unknown outcome did apply) must not write
// a second entry at an offset already taken: offsets are written once.
func TestCommitNeverOverwritesAnOffset(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	tp := newTopic(t, c, "t", 2).TP(0)
	other := newTopic(t, c, "u", 1).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := s.Acquire(ctx, tp)
	if err != nil {
		t.Fatal(err)
	}
	otherEpoch, err := s.Acquire(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 4, 1)}})[0]; err != nil {
		t.Fatal(err)
	}
	errs := s.Commit(ctx, []Commit{
		{TP: tp, Epoch: epoch, Entry: entry(0, 1, 1)},
		{TP: other, Epoch: otherEpoch, Entry: entry(0, 1, 1)},
	})
	if !errors.Is(errs[0], ErrOffsetConflict) {
		t.Fatalf("second commit at offset 0: %v, want ErrOffsetConflict", errs[0])
	}
	if errs[1] != nil {
		t.Fatalf("unrelated partition in the same call: %v", errs[1])
	}
	if got := indexBases(t, c, tp); len(got) != 1 || got[0].LastOffset != 3 {
		t.Fatalf("index after conflict: %+v", got)
	}
}
