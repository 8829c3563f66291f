package coord

import (
	"errors"
	"math"
	"testing"
)

// segEntry is a segment of offsets [base, last] in object obj.
func segEntry(base, last int64, obj string, level int) IndexEntry {
	return IndexEntry{BaseOffset: base, LastOffset: last, Bytes: 100 * (last - base + 1),
		Segment: &Segment{Object: obj, Level: level, FooterPos: 64, FooterLen: 40, FooterCRC: 1,
			Epochs: []EpochStart{{Epoch: 1, Offset: base}}}}
}

// A partition's maintenance, as its leader runs it: segments replace uncompacted entries and merge;
// the log start moves and takes the segments below it; the records left without a live entry are
// dead, and deleting them changes nothing a reader sees. A leader that lost the partition writes
// nothing.
func TestMaintenanceWrites(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	tp := newTopic(t, c, "m", 1).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	l := lead(t, s, tp)
	k := runCache(t, c, nil)
	for base := int64(0); base < 40; base += 10 {
		commitOK(t, s, tp, l.Rev, withEpoch(entry(base, 10, 100), l))
	}

	rev, err := s.WriteSegment(ctx, tp, l.Rev, segEntry(0, 19, "part/a", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	pi, _ := k.PartitionIndex(tp)
	if len(pi.Segments) != 1 || len(pi.Tail) != 2 || pi.Tail[0].BaseOffset != 20 || pi.HighWatermark != 40 {
		t.Fatalf("after an L0 merge: %+v", pi)
	}
	if dead := k.DeadRecords(); len(dead) != 2 {
		t.Fatalf("dead records %v, want the 2 the segment covers", dead)
	}
	if _, err := s.WriteSegment(ctx, tp, l.Rev, segEntry(20, 39, "part/b", 1), nil); err != nil {
		t.Fatal(err)
	}
	// A merge of the two: the new segment at the first one's base replaces both.
	if rev, err = s.WriteSegment(ctx, tp, l.Rev, segEntry(0, 39, "part/c", 2), []int64{0, 20}); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if got := k.Entries(tp, 25, math.MaxInt64); len(got) != 1 || got[0].Segment.Object != "part/c" {
		t.Fatalf("after a merge: %+v", got)
	}
	if objs := k.ReferencedObjects(); len(objs) != 1 || objs["part/c"] != 2 {
		t.Fatalf("referenced objects %v, want part/c alone", objs)
	}
	if err := c.DeleteRecords(ctx, k.DeadRecords()); err != nil {
		t.Fatal(err)
	}
	if n := recordCount(t, c); n != 0 {
		t.Fatalf("%d records left", n)
	}

	// Retention: the log start moves past the segment, which goes with it.
	if rev, err = s.MoveLogStart(ctx, tp, l.Rev, 40, []int64{0}); err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	if pi, _ = k.PartitionIndex(tp); pi.LogStart != 40 || pi.HighWatermark != 40 || len(pi.Segments) != 0 {
		t.Fatalf("after retention: %+v", pi)
	}
	// The next commit continues at the high watermark, and a fresh load agrees.
	commitOK(t, s, tp, l.Rev, withEpoch(entry(40, 5, 10), l))
	if next, _ := loadPartition(t, c, tp); next != 45 {
		t.Fatalf("next offset %d after retention emptied the partition, want 45", next)
	}

	// A leader that lost the partition writes nothing.
	if err := s.Resign(ctx, tp, l.Rev); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"segment":   second(s.WriteSegment(ctx, tp, l.Rev, segEntry(40, 44, "part/d", 1), nil)),
		"log start": second(s.MoveLogStart(ctx, tp, l.Rev, 45, nil)),
		"producers": second(s.WriteProducers(ctx, tp, l.Rev, []ProducerState{{ID: 1}}, nil)),
	} {
		if !errors.Is(err, ErrFenced) {
			t.Errorf("%s written by a former leader: %v, want ErrFenced", name, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// Producer snapshots of any number of producers fit: they go in as many Txns as needed. The view
// rebuilds each producer's state from its snapshot and the uncompacted batches after it, a batch in
// both counted once.
func TestWriteProducersAndRebuild(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 16 })
	tp := newTopic(t, c, "p", 1).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	l := lead(t, s, tp)
	var states []ProducerState
	for id := range int64(100) {
		states = append(states, ProducerState{ID: id, Batches: []SeqBatch{{FirstSeq: 0, LastSeq: 0, FirstOffset: id, LastOffset: id}}})
	}
	many := make([]ProducerBatch, 100)
	for i := range many {
		many[i] = ProducerBatch{ID: int64(i), FirstOffset: int64(i), LastOffset: int64(i)}
	}
	commitOK(t, s, tp, l.Rev, IndexEntry{BaseOffset: 0, LastOffset: 99, Extents: entry(0, 100, 1).Extents})
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: l.Rev, Entry: entry(100, 1, 1),
		Batches: []ProducerBatch{{ID: 7, FirstSeq: 1, LastSeq: 1, FirstOffset: 100, LastOffset: 100}}}})[0]; err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteProducers(ctx, tp, l.Rev, states, nil); err != nil {
		t.Fatal(err)
	}
	next, producers := loadPartition(t, c, tp)
	if next != 101 || len(producers) != 100 {
		t.Fatalf("next %d, %d producers; want 101, 100", next, len(producers))
	}
	if p := producers[7]; p.ID != 7 || len(p.Batches) != 2 || p.Batches[1].FirstOffset != 100 {
		t.Fatalf("producer 7 rebuilt as %+v; want its snapshot's batch, then the record's", p)
	}
	if _, err := s.WriteProducers(ctx, tp, l.Rev, nil, []int64{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if _, producers = loadPartition(t, c, tp); len(producers) != 97 {
		t.Fatalf("%d producers after 3 expired, want 97", len(producers))
	}
}

// One agent at a time runs GC; the key goes with its session.
func TestCampaignGC(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	a, b := newSession(t, c, "a", "127.0.0.1:1"), newSession(t, c, "b", "127.0.0.1:2")
	for _, tc := range []struct {
		s    *Session
		want bool
	}{{a, true}, {b, false}, {a, true}} {
		if got, err := tc.s.CampaignGC(ctx); err != nil || got != tc.want {
			t.Fatalf("%s campaigns: %v, %v; want %v", tc.s.Info().ID, got, err, tc.want)
		}
	}
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := b.CampaignGC(ctx); err != nil || !got {
		t.Fatalf("b campaigns after a left: %v, %v", got, err)
	}
}
