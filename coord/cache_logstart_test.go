package coord

import (
	"context"
	"math"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// putLegacy writes entries as the legacy layout did, one index key each: data an earlier version left.
func putLegacy(t *testing.T, c *Client, tp TP, entries ...IndexEntry) {
	t.Helper()
	for _, e := range entries {
		if _, err := c.Etcd().Put(testCtx(t), c.keys.indexEntry(tp, e.BaseOffset), mustJSON(t, e)); err != nil {
			t.Fatal(err)
		}
	}
}

// legacyRun is the entries [from, to) of n offsets each, of size bytes.
func legacyRun(from, to, n int64, size int32) []IndexEntry {
	var out []IndexEntry
	for base := from; base < to; base += n {
		out = append(out, entry(base, n, size))
	}
	return out
}

// trimIndex deletes tp's legacy index keys below base with one range delete, as that layout's
// retention (or an operator trimming keys) did.
func trimIndex(t *testing.T, c *Client, tp TP, base int64) {
	t.Helper()
	if _, err := c.Etcd().Delete(testCtx(t), c.keys.indexEntry(tp, 0), clientv3.WithRange(c.keys.indexEntry(tp, base))); err != nil {
		t.Fatal(err)
	}
}

func checkLog(t *testing.T, k *Cache, tp TP, start, hwm int64) {
	t.Helper()
	if got, want := [2]int64{k.LogStart(tp), k.HighWatermark(tp)}, [2]int64{start, hwm}; got != want {
		t.Fatalf("log start, high watermark = %v, want %v", got, want)
	}
	es := k.Entries(tp, start, math.MaxInt64)
	if hwm > start && (len(es) == 0 || es[0].BaseOffset != start || es[len(es)-1].LastOffset != hwm-1) {
		t.Fatalf("entries from %d: %+v, want [%d, %d]", start, es, start, hwm-1)
	}
	if start > 0 && k.Entries(tp, start-1, math.MaxInt64) != nil {
		t.Fatalf("entries below the log start %d", start)
	}
}

// A partition whose first legacy index keys are gone is loaded from its first key on: a fresh cache
// shows its log start and high watermark, and follows the commits after it, now records.
func TestCacheLoadsLogNotStartingAtZero(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "t")
	putLegacy(t, c, tp, legacyRun(0, 50, 10, 100)...)
	trimIndex(t, c, tp, 20)

	k := runCache(t, c, nil)
	checkLog(t, k, tp, 20, 50)
	if next, _ := loadPartition(t, c, tp); next != 50 {
		t.Fatalf("next offset %d, want 50", next)
	}

	w := k.WaitAdvance(tp, 50)
	commitOK(t, s, tp, epoch, entry(50, 10, 100))
	waitChan(t, w, "the commit after a trimmed log")
	checkLog(t, k, tp, 20, 60)
	k.Apply(tp, entry(60, 5, 100)) // the leader's own next commit
	checkLog(t, k, tp, 20, 65)
}

// A partition whose every legacy index key is gone shows nothing at load; its next commit, wherever
// it starts, is its log start.
func TestCacheFirstEntryByWatchSetsLogStart(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "t")
	putLegacy(t, c, tp, entry(0, 30, 100))
	trimIndex(t, c, tp, 30)

	k := runCache(t, c, nil)
	k.Apply(tp, entry(30, 10, 100)) // not from etcd: it cannot tell where the log starts
	checkLog(t, k, tp, 0, 0)

	w := k.WaitAdvance(tp, 0)
	commitOK(t, s, tp, epoch, entry(30, 10, 100))
	waitChan(t, w, "the first commit seen")
	checkLog(t, k, tp, 30, 40)
	commitOK(t, s, tp, epoch, entry(40, 10, 100))
	syncCache(t, k)
	checkLog(t, k, tp, 30, 50)
}

// A leader's Apply runs ahead of the watch; the legacy keys' range delete and the watched records of
// the applied entries then arrive in etcd's order, and the view ends as etcd is.
func TestCacheApplyAheadOfTrimmingWatch(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "t")
	putLegacy(t, c, tp, legacyRun(0, 20, 10, 100)...)
	k := runCache(t, c, nil)
	checkLog(t, k, tp, 0, 20)
	for base := int64(20); base < 40; base += 10 {
		e := entry(base, 10, 100)
		k.Apply(tp, e) // before the commit, so the watch is surely behind
		commitOK(t, s, tp, epoch, e)
	}
	trimIndex(t, c, tp, 10)
	syncCache(t, k)
	checkLog(t, k, tp, 10, 40)
	if dead := k.DeadRecords(); len(dead) != 0 {
		t.Fatalf("dead records %v: every record's entry is live", dead)
	}
}

// A reload (the watch fell behind compaction) while the first keys were deleted shows the log as
// etcd has it: the deleted entries do not come back from the old view.
func TestCacheReloadOfTrimmedLog(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "t")
	putLegacy(t, c, tp, entry(0, 10, 1))

	var loads atomic.Int32
	reloaded := make(chan struct{})
	k := runCache(t, c, func(k *Cache, rev int64) {
		switch loads.Add(1) {
		case 1:
			putLegacy(t, c, tp, entry(10, 10, 1), entry(20, 10, 1))
			trimIndex(t, c, tp, 20)
			now, err := c.Etcd().Get(context.Background(), "now")
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := c.Etcd().Compact(context.Background(), now.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
				t.Error(err)
			}
		case 2:
			close(reloaded)
		}
	})
	waitChan(t, reloaded, "reload after compaction")
	checkLog(t, k, tp, 20, 30)
	w := k.WaitAdvance(tp, 30)
	commitOK(t, s, tp, epoch, entry(30, 10, 1))
	waitChan(t, w, "advance after reload")
	checkLog(t, k, tp, 20, 40)
}
