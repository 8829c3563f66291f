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

// The leader's own commit, applied to its view before the watch brings the record, opens the
// transaction its transactional batch starts: the last stable offset stops at the batch, a merge
// plan sees the partition unstable, and the producer's state has the batch. Applied without its
// batches, the entry advanced the high watermark with the LSO: read_committed fetches served an
// open transaction's records, which its abort then could not take back (an aborted read).
func TestApplyOpensTransaction(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	topic := newTopic(t, c, "applytxn", 2)
	k := runCache(t, c, nil)
	syncCache(t, k)
	plain, txn := topic.TP(0), topic.TP(1)
	// Nothing is committed to etcd: the watch never brings these, so the view holds only what Apply gave.
	k.ApplyAll([]Commit{
		{TP: plain, Entry: entry(0, 4, 40), Batches: []ProducerBatch{{ID: 7, FirstOffset: 0, LastOffset: 3, Transactional: true}}},
		{TP: txn, Entry: entry(0, 3, 30), Batches: []ProducerBatch{{ID: 8, FirstOffset: 0, LastOffset: 2}}}, // idempotent, not transactional
	})
	k.ApplyAll([]Commit{{TP: txn, Entry: entry(3, 5, 50), Batches: []ProducerBatch{{ID: 9, FirstSeq: 0, LastSeq: 4, FirstOffset: 3, LastOffset: 7, Transactional: true}}}})
	for _, c := range []struct {
		tp       TP
		hwm, lso int64
	}{{plain, 4, 0}, {txn, 8, 3}} {
		if hwm := k.HighWatermark(c.tp); hwm != c.hwm {
			t.Fatalf("partition %d: high watermark %d, want %d", c.tp.Partition, hwm, c.hwm)
		}
		if lso, _ := k.TxnState(c.tp, 0); lso != c.lso {
			t.Fatalf("partition %d: last stable offset %d after the leader's Apply, want %d (the open transaction's first offset)", c.tp.Partition, lso, c.lso)
		}
		pi, _ := k.PartitionIndex(c.tp)
		if !pi.Unstable || pi.Stable != c.lso {
			t.Fatalf("partition %d: merge plan sees stable %d unstable %v, want %d true", c.tp.Partition, pi.Stable, pi.Unstable, c.lso)
		}
	}
	st, _ := k.PartitionState(txn)
	var found bool
	for _, s := range st.Producers {
		if s.ID == 9 {
			found = s.TxnOpen && s.TxnFirst == 3 && len(s.Batches) == 1 && s.Batches[0].LastSeq == 4
		}
	}
	if !found {
		t.Fatalf("producer states after Apply %+v: want producer 9 with its transaction open at 3 and its batch", st.Producers)
	}
	// The marker, applied the same way, closes the transaction.
	k.ApplyAll([]Commit{{TP: txn, Entry: IndexEntry{BaseOffset: 8, LastOffset: 8, Marker: &TxnMarker{ProducerID: 9, FirstOffset: 3}}}})
	if lso, aborted := k.TxnState(txn, 0); lso != 9 || len(aborted) != 1 || aborted[0] != (AbortedTxn{ProducerID: 9, FirstOffset: 3, Marker: 8}) {
		t.Fatalf("after the abort marker: lso %d aborted %+v, want 9 and producer 9's [3, 8]", lso, aborted)
	}
}
