package lifecycle

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/cleaner"
	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// txnCluster is a compacted partition written by transactional producers in a test.
type txnCluster struct {
	*cluster
	now time.Time
}

// txn commits a transactional batch of pid holding recs at next and returns the offset after it.
func (c *txnCluster) txn(t *testing.T, next, pid int64, recs ...hrec) int64 {
	t.Helper()
	data := keyedBatch(t, c.now.UnixMilli(), 0, pid, 0, recs)
	data[22] |= 1 << 4 // attributes: transactional
	binary.BigEndian.PutUint32(data[17:], crc32.Checksum(data[21:], castagnoli))
	return c.commitKeyed(t, next, c.now.UnixMilli(), pid, 0, len(recs), true, data)
}

// plain commits a batch of recs without a producer at next and returns the offset after it.
func (c *txnCluster) plain(t *testing.T, next int64, recs ...hrec) int64 {
	t.Helper()
	return c.produceKeyed(t, next, c.now.UnixMilli(), 0, -1, 0, recs)
}

// end commits pid's marker at offset (the end of its transaction that began at first) and returns the
// offset after it.
func (c *txnCluster) end(t *testing.T, offset, pid, first int64, commit bool) int64 {
	t.Helper()
	ctx := context.Background()
	put, err := c.client.Etcd().Put(ctx, c.client.Prefix()+"txns/default/tx", "{}")
	if err != nil {
		t.Fatal(err)
	}
	errs := c.sess.CommitMarkers(ctx, coord.TxnGuard{NS: "default", ID: "tx", Version: put.Header.Revision}, []coord.MarkerCommit{{
		TP: c.lead.TP, Epoch: c.lead.Epoch, Offset: offset, LeaderEpoch: int64(c.epoch), Time: c.now.UnixMilli(),
		Marker: coord.TxnMarker{ProducerID: pid, Epoch: 0, Commit: commit, FirstOffset: first}}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	c.sync(t)
	return offset + 1
}

// testMarker writes a marker entry's control batch, as the agent's kwire does.
func testMarker(dst []byte, e coord.IndexEntry) []byte {
	return kwire.AppendControlBatch(dst, kwire.Marker{BaseOffset: e.BaseOffset, LeaderEpoch: int32(e.Epoch),
		ProducerID: e.Marker.ProducerID, ProducerEpoch: e.Marker.Epoch, Commit: e.Marker.Commit, Timestamp: e.MaxTimestamp})
}

// offsets are the offsets of the partition's records, control records included, as a reader finds them.
func (c *txnCluster) offsets(t *testing.T) []int64 {
	t.Helper()
	recs, _ := c.readBatches(t)
	return slices.Sorted(maps.Keys(recs))
}

// aborted is the aborted transactions the partition's segments list.
func (c *txnCluster) aborted() []coord.AbortedTxn {
	pi, _ := c.cache.PartitionIndex(c.lead.TP)
	var out []coord.AbortedTxn
	for _, s := range pi.Segments {
		out = append(out, s.Segment.Aborted...)
	}
	return out
}

// A compacted partition with transactions is cleaned as Kafka's cleaner cleans it: the records of an
// aborted transaction go at the first clean, whatever their keys; committed transactional records are
// records like any other (a later record of the key supersedes them, and they supersede earlier ones);
// an open transaction's records are neither taken into the key map nor removed (they stay in the tail
// until it ends: segments hold only stable offsets); a marker stays while
// its transaction has records, and goes delete.retention.ms after its segment is clean once it has
// none, an abort marker with its entry in the segment's aborted list.
func TestCleanTransactions(t *testing.T) {
	t.Parallel()
	c := &txnCluster{cluster: newCluster(t), now: time.UnixMilli(1_700_000_000_000)}
	ctx := context.Background()
	comp := Compaction{DeleteRetention: time.Hour, MaxLag: -1}
	p := DefaultPolicy()
	p.TailEntries, p.Compaction = 7, &comp
	m := NewMaintainer(MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
		Patch: patch, Marker: testMarker, Now: func() time.Time { return c.now }}, c.cache, storeExtents{c.store}, c.store)
	maintain := func() {
		t.Helper()
		for range 4 {
			if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
				t.Fatal(err)
			}
		}
	}

	next := c.txn(t, 0, 7, hrec{key: "a", value: "a0"}, hrec{key: "b", value: "b1"}) // committed at 2
	next = c.end(t, next, 7, 0, true)
	next = c.txn(t, next, 8, hrec{key: "a", value: "a3"}, hrec{key: "c", value: "c4"}) // aborted at 5
	next = c.end(t, next, 8, 3, false)
	next = c.plain(t, next, hrec{key: "b", value: "b6"})
	next = c.txn(t, next, 9, hrec{key: "a", value: "a7"}) // open: the last stable offset is 7
	next = c.plain(t, next, hrec{key: "d", value: "d8"})
	maintain()
	if lso, _ := c.cache.TxnState(c.lead.TP, 0); lso != 7 {
		t.Fatalf("last stable offset %d, want 7", lso)
	}
	// a0 stays (a7 is past the last stable offset), b1 goes (b6), the aborted a3 and c4 go; both
	// markers stay, their transactions' records having been read by this clean.
	if got, want := c.offsets(t), []int64{0, 2, 5, 6, 7, 8}; !slices.Equal(got, want) {
		t.Fatalf("first clean: offsets %v, want %v", got, want)
	}
	if got, want := c.aborted(), []coord.AbortedTxn{{ProducerID: 8, FirstOffset: 3, Marker: 5}}; !slices.Equal(got, want) {
		t.Fatalf("first clean: aborted %+v, want %+v", got, want)
	}

	// The open transaction commits: a7 now supersedes a0, whose transaction keeps its marker while its
	// horizon has not passed.
	next = c.end(t, next, 9, 7, true)
	next = c.plain(t, next, hrec{key: "e", value: "e10"})
	p.TailEntries = 2
	maintain()
	if got, want := c.offsets(t), []int64{2, 5, 6, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("second clean: offsets %v, want %v", got, want)
	}

	// Past delete.retention.ms both markers go (the abort marker with its aborted entry); the one of
	// the transaction whose record a7 is stays, as does the first batch of each segment.
	c.now = c.now.Add(2 * time.Hour)
	maintain()
	if got, want := c.offsets(t), []int64{6, 7, 8, 9, 10}; !slices.Equal(got, want) {
		t.Fatalf("past the horizon: offsets %v, want %v", got, want)
	}
	if got := c.aborted(); len(got) != 0 {
		t.Fatalf("past the horizon: aborted %+v, want none", got)
	}
	if _, ab := c.cache.TxnState(c.lead.TP, 0); len(ab) != 0 {
		t.Fatalf("past the horizon: the view's aborted transactions %+v, want none", ab)
	}
	if pi, _ := c.cache.PartitionIndex(c.lead.TP); pi.HighWatermark != next {
		t.Fatalf("high watermark %d, want %d", pi.HighWatermark, next)
	}
}

// txnOf is one transaction of a random history: its producer, its records' offsets, and its end.
type txnOf struct {
	pid     int64
	first   int64
	records []int64
	marker  int64 // 0 while open
	commit  bool
	goneAt  time.Time // when a check first found none of its records
}

// txnHistory is what a test wrote: data records by offset, the transactions, and each key's latest
// visible record (plain, or of a committed transaction).
type txnHistory struct {
	recs   map[int64]hrec
	txnAt  map[int64]*txnOf // data record offset -> its transaction (absent: plain)
	txns   []*txnOf
	open   map[int64]*txnOf // producer -> its open transaction
	lastOf map[string]int64
	next   int64
}

// step writes one random thing: a plain batch, a batch of a producer's transaction (beginning one if
// it has none open), or the end of an open transaction (a commit, or an abort one time in three).
func (h *txnHistory) step(t *testing.T, c *txnCluster, rng *rand.Rand, keys int) {
	pid := 11 + rng.Int64N(3)
	recs := make([]hrec, 1+rng.IntN(3))
	for i := range recs {
		recs[i] = hrec{key: fmt.Sprintf("k%d", rng.IntN(keys)), value: fmt.Sprintf("v%d", h.next+int64(i))}
	}
	base := h.next
	switch op := rng.IntN(20); {
	case op < 8:
		h.next = c.plain(t, h.next, recs...)
		for i, r := range recs {
			h.recs[base+int64(i)], h.lastOf[r.key] = r, base+int64(i)
		}
	case op < 15:
		tx := h.open[pid]
		if tx == nil {
			tx = &txnOf{pid: pid, first: base}
			h.open[pid], h.txns = tx, append(h.txns, tx)
		}
		h.next = c.txn(t, h.next, pid, recs...)
		for i, r := range recs {
			o := base + int64(i)
			h.recs[o], h.txnAt[o], tx.records = r, tx, append(tx.records, o)
		}
	default:
		if tx := h.open[pid]; tx != nil {
			h.end(t, c, tx, rng.IntN(3) > 0)
		}
	}
}

// end writes tx's marker.
func (h *txnHistory) end(t *testing.T, c *txnCluster, tx *txnOf, commit bool) {
	tx.marker, tx.commit = h.next, commit
	h.next = c.end(t, h.next, tx.pid, tx.first, commit)
	delete(h.open, tx.pid)
	if commit {
		for _, o := range tx.records {
			k := h.recs[o].key
			if last, ok := h.lastOf[k]; !ok || o > last {
				h.lastOf[k] = o
			}
		}
	}
}

// check verifies the partition against the history: every data record read is the one written at its
// offset; every record of an open transaction and every key's latest visible record is there; a
// transaction with a record left has its marker, and an aborted one its entry in the aborted list
// (a reader filtering its records finds where they end). When final: only each key's latest visible
// record is left, and no record of an aborted transaction.
func (h *txnHistory) check(t *testing.T, c *txnCluster, final bool, retention time.Duration) {
	t.Helper()
	got, _ := c.readBatches(t)
	_, aborted := c.cache.TxnState(c.lead.TP, 0)
	markers := map[int64]bool{}
	for _, tx := range h.txns {
		if tx.marker > 0 {
			markers[tx.marker] = true
		}
	}
	for o, r := range got {
		if markers[o] {
			continue
		}
		w, ok := h.recs[o]
		if !ok || w.key != r.key || w.value != r.value {
			t.Fatalf("offset %d holds %+v, written %+v", o, r.hrec, w)
		}
		tx := h.txnAt[o]
		if final && (h.lastOf[r.key] != o || tx != nil && !tx.commit) {
			t.Fatalf("offset %d (key %s, transaction %+v) is not its key's latest visible record (%d) after a full clean", o, r.key, tx, h.lastOf[r.key])
		}
		if tx == nil || tx.marker == 0 {
			continue
		}
		if _, ok := got[tx.marker]; !ok {
			t.Fatalf("offset %d: a record of the transaction ended at %d, whose marker is gone", o, tx.marker)
		}
		if !tx.commit && !slices.Contains(aborted, coord.AbortedTxn{ProducerID: tx.pid, FirstOffset: tx.first, Marker: tx.marker}) {
			t.Fatalf("offset %d: a record of the transaction aborted at %d, which the aborted list %+v lacks", o, tx.marker, aborted)
		}
	}
	for k, o := range h.lastOf {
		if _, ok := got[o]; !ok {
			t.Fatalf("key %s: its latest visible record, at %d, is gone", k, o)
		}
	}
	// An aborted transaction's marker outlives its records by delete.retention.ms, so that a reader who
	// read them finds it.
	for _, tx := range h.txns {
		if tx.marker == 0 || tx.commit || slices.ContainsFunc(tx.records, func(o int64) bool { _, ok := got[o]; return ok }) {
			continue
		}
		if tx.goneAt.IsZero() {
			tx.goneAt = c.now
		}
		if _, ok := got[tx.marker]; !ok && c.now.Sub(tx.goneAt) < retention {
			t.Fatalf("the marker at %d went %v after its aborted records, within delete.retention.ms (%v)", tx.marker, c.now.Sub(tx.goneAt), retention)
		}
	}
	for _, a := range aborted {
		if _, ok := got[a.Marker]; !ok {
			t.Fatalf("the aborted list names %+v, whose marker is gone", a)
		}
	}
	for _, tx := range h.open {
		for _, o := range tx.records {
			if _, ok := got[o]; !ok {
				t.Fatalf("offset %d: a record of the open transaction of producer %d is gone", o, tx.pid)
			}
		}
	}
}

// TestCleanRandomTransactions writes random histories of plain and transactional batches, commits and
// aborts, to a compacted partition, maintaining it as it goes with delete.retention.ms of a few steps,
// and checks after each step what txnHistory.check says; then, every transaction ended and everything
// clean, that only the latest visible record of each key is left, and, past delete.retention.ms, that
// the markers left are those the segments' bounds and the live producers keep.
func TestCleanRandomTransactions(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 17))
			c := &txnCluster{cluster: newCluster(t), now: time.UnixMilli(1_700_000_000_000)}
			ctx := context.Background()
			comp := Compaction{MinDirtyRatio: []float64{0, 0.3}[rng.IntN(2)], DeleteRetention: 5 * time.Second, MaxLag: -1}
			p := DefaultPolicy()
			p.TailEntries, p.FanIn, p.Compaction = 1+rng.IntN(5), 2+rng.IntN(3), &comp
			m := NewMaintainer(MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
				Patch: patch, Marker: testMarker, Now: func() time.Time { return c.now },
				CleanerMemory: int64(cleaner.EntryBytes * (4 + rng.IntN(20)))}, c.cache, storeExtents{c.store}, c.store)
			maintain := func(n int) {
				t.Helper()
				for range n {
					if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
						t.Fatal(err)
					}
				}
			}
			h := &txnHistory{recs: map[int64]hrec{}, txnAt: map[int64]*txnOf{}, open: map[int64]*txnOf{}, lastOf: map[string]int64{}}
			keys := 4 + rng.IntN(12)
			for range 100 {
				h.step(t, c, rng, keys)
				c.now = c.now.Add(time.Second)
				maintain(1)
				h.check(t, c, false, comp.DeleteRetention)
			}
			for _, pid := range slices.Sorted(maps.Keys(h.open)) {
				h.end(t, c, h.open[pid], rng.IntN(2) == 0)
			}
			p.TailEntries, comp.MinDirtyRatio = 1, 0
			maintain(40)
			h.check(t, c, true, comp.DeleteRetention)

			c.now = c.now.Add(time.Minute)
			maintain(40)
			h.check(t, c, true, comp.DeleteRetention)
			got, _ := c.readBatches(t)
			pi, _ := c.cache.PartitionIndex(c.lead.TP)
			left := 0
			for _, tx := range h.txns {
				if _, ok := got[tx.marker]; ok {
					left++
				}
			}
			if kept := 2*len(pi.Segments) + 3; left > kept {
				t.Fatalf("%d markers left past delete.retention.ms, want at most %d (segments' first and last batches, the live producers' last)", left, kept)
			}
		})
	}
}
