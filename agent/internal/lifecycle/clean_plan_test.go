package lifecycle

import (
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// seg is a segment [base, last] of bytes, its newest record at maxTs, clean to ct (cleaned at cl).
func seg(base, last, bytes, maxTs, ct, cl int64) coord.IndexEntry {
	return coord.IndexEntry{BaseOffset: base, LastOffset: last, Bytes: bytes, MaxTimestamp: maxTs,
		Segment: &coord.Segment{Level: 1, MinTimestamp: maxTs - 10, CleanTo: ct, Cleaned: cl, Time: maxTs}}
}

func TestCleanPlan(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_000_000)
	cl := seg(0, 99, 100, 1000, 100, 500)
	dirty := seg(100, 199, 100, 2000, 0, 0)
	half := seg(100, 199, 100, 2000, 150, 0)
	young := seg(200, 299, 100, now.UnixMilli()-10, 0, 0)
	for _, tc := range []struct {
		what     string
		segs     []coord.IndexEntry
		c        Compaction
		due      bool
		from, to int64
	}{
		{"nothing", nil, Compaction{MinDirtyRatio: 0.5}, false, 0, 0},
		{"all clean", []coord.IndexEntry{cl}, Compaction{MinDirtyRatio: 0}, false, 0, 0},
		{"half dirty at 0.5", []coord.IndexEntry{cl, dirty}, Compaction{MinDirtyRatio: 0.5}, true, 100, 200},
		{"half dirty at 0.6", []coord.IndexEntry{cl, dirty}, Compaction{MinDirtyRatio: 0.6}, false, 0, 0},
		{"overdue", []coord.IndexEntry{cl, dirty}, Compaction{MinDirtyRatio: 0.9, MaxLag: time.Second}, true, 100, 200},
		{"not yet overdue", []coord.IndexEntry{cl, dirty}, Compaction{MinDirtyRatio: 0.9, MaxLag: time.Hour}, false, 0, 0},
		{"partly clean", []coord.IndexEntry{cl, half}, Compaction{MinDirtyRatio: 0.25}, true, 150, 200},
		{"partly clean below the ratio", []coord.IndexEntry{cl, half}, Compaction{MinDirtyRatio: 0.3}, false, 0, 0},
		{"min lag stops at a young segment", []coord.IndexEntry{cl, dirty, young}, Compaction{MinDirtyRatio: 0.5, MinLag: time.Second}, true, 100, 200},
		{"min lag: only young", []coord.IndexEntry{cl, young}, Compaction{MinDirtyRatio: 0, MinLag: time.Second}, false, 0, 0},
	} {
		pi := coord.PartitionIndex{Segments: tc.segs}
		p := DefaultPolicy()
		p.Compaction = &tc.c
		s, ok := clean(pi, p, now)
		if ok != tc.due || (ok && (s.DirtyFrom != tc.from || s.DirtyTo != tc.to || s.Kind != StepClean)) {
			t.Errorf("%s: due %v [%d, %d), want %v [%d, %d)", tc.what, ok, s.DirtyFrom, s.DirtyTo, tc.due, tc.from, tc.to)
		}
		if ok && len(s.Segments) == 0 || ok && s.Segments[0].BaseOffset != 0 {
			t.Errorf("%s: segments %v, want every one from the first", tc.what, s.Segments)
		}
	}
	// Without compaction nothing is cleaned; the tail age follows max.compaction.lag.ms.
	p := DefaultPolicy()
	if _, ok := clean(coord.PartitionIndex{Segments: []coord.IndexEntry{dirty}}, p, now); ok {
		t.Error("a topic that is not compacted was cleaned")
	}
	p.Compaction = &Compaction{MaxLag: 10 * time.Second}
	if p.tailAge() != 5*time.Second {
		t.Errorf("tail age %v with max lag 10s, want 5s", p.tailAge())
	}
}

func TestMergedCleanState(t *testing.T) {
	t.Parallel()
	a, b := seg(0, 9, 1, 1, 10, 300), seg(10, 19, 1, 1, 20, 200)
	d, h := seg(20, 29, 1, 1, 0, 0), seg(20, 29, 1, 1, 25, 0)
	for _, tc := range []struct {
		what   string
		segs   []coord.IndexEntry
		ct, cl int64
	}{
		{"all clean", []coord.IndexEntry{a, b}, 20, 300},
		{"clean then dirty", []coord.IndexEntry{a, b, d}, 20, 0},
		{"clean then half", []coord.IndexEntry{a, b, h}, 25, 0},
		{"dirty first", []coord.IndexEntry{d}, 0, 0},
	} {
		ct, cl := mergedCleanState(tc.segs)
		if ct != tc.ct || cl != tc.cl {
			t.Errorf("%s: clean to %d at %d, want %d at %d", tc.what, ct, cl, tc.ct, tc.cl)
		}
	}
}
