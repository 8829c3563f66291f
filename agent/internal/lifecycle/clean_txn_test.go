package lifecycle

import (
	"context"
	"encoding/binary"
	"hash/crc32"
	"maps"
	"slices"
	"testing"
	"time"

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
	marker := func(dst []byte, e coord.IndexEntry) []byte {
		return kwire.AppendControlBatch(dst, kwire.Marker{BaseOffset: e.BaseOffset, LeaderEpoch: int32(e.Epoch),
			ProducerID: e.Marker.ProducerID, ProducerEpoch: e.Marker.Epoch, Commit: e.Marker.Commit, Timestamp: e.MaxTimestamp})
	}
	m := NewMaintainer(MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
		Patch: patch, Marker: marker, Now: func() time.Time { return c.now }}, c.cache, storeExtents{c.store}, c.store)
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
