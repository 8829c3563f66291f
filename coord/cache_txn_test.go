package coord

import (
	"slices"
	"testing"
)

// The last stable offset is the oldest open transaction's first offset: opened by a snapshot or a
// transactional batch, closed only by a marker after it (a merge's snapshot can show a newer
// transaction open while the tail still holds the older one's marker); the aborted list comes from
// segments and the tail's abort markers.
func TestPartitionStableAndAborted(t *testing.T) {
	t.Parallel()
	mk := func(pid int64, commit bool, first int64) *TxnMarker {
		return &TxnMarker{ProducerID: pid, Commit: commit, FirstOffset: first}
	}
	p := &partition{hwm: 40, snapshots: map[int64]ProducerState{
		1: {ID: 1, TxnOpen: true, TxnFirst: 25}, // opened after the marker at 20 below
		2: {ID: 2},
	}}
	p.segs = []IndexEntry{{BaseOffset: 0, LastOffset: 9, Segment: &Segment{Aborted: []AbortedTxn{{ProducerID: 3, FirstOffset: 2, Marker: 8}}}}}
	p.tail = []tailEntry{
		{IndexEntry: IndexEntry{BaseOffset: 10, LastOffset: 19}, batches: []ProducerBatch{{ID: 1, FirstOffset: 12, Transactional: true},
			{ID: 2, FirstOffset: 15, Transactional: true}}},
		{IndexEntry: IndexEntry{BaseOffset: 20, LastOffset: 20, Marker: mk(1, false, 12)}},
		{IndexEntry: IndexEntry{BaseOffset: 21, LastOffset: 39}, batches: []ProducerBatch{{ID: 1, FirstOffset: 25, Transactional: true}}},
	}
	if got := p.stable(); got != 15 {
		t.Fatalf("last stable offset %d, want 15 (producer 2 open at 15; producer 1 open at 25)", got)
	}
	want := []AbortedTxn{{ProducerID: 3, FirstOffset: 2, Marker: 8}, {ProducerID: 1, FirstOffset: 12, Marker: 20}}
	if got := p.aborted(0); !slices.Equal(got, want) {
		t.Fatalf("aborted from 0: %+v, want %+v", got, want)
	}
	if got := p.aborted(9); !slices.Equal(got, want[1:]) {
		t.Fatalf("aborted from 9: %+v, want %+v", got, want[1:])
	}
	p.tail = append(p.tail, tailEntry{IndexEntry: IndexEntry{BaseOffset: 40, LastOffset: 40, Marker: mk(2, true, 15)}})
	p.hwm = 41
	if got := p.stable(); got != 25 {
		t.Fatalf("last stable offset %d after producer 2's commit, want 25", got)
	}
}
