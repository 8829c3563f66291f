package coord

import (
	"context"
	"math"
	"sync/atomic"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// leaderOf sets up a topic of one partition led by a fresh session, for cache tests.
func leaderOf(t *testing.T, c *Client, name string) (*Session, TP, int64) {
	t.Helper()
	tp := newTopic(t, c, name, 1).TP(0)
	s := newSession(t, c, "leader-"+name, "127.0.0.1:1")
	epoch, err := rev(s.Acquire(testCtx(t), tp, EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	return s, tp, epoch
}

func commitOK(t *testing.T, s *Session, tp TP, epoch int64, e IndexEntry) {
	t.Helper()
	if err := s.Commit(testCtx(t), []Commit{{TP: tp, Epoch: epoch, Entry: e}})[0]; err != nil {
		t.Fatal(err)
	}
}

// syncCache waits until k has seen every write made so far.
func syncCache(t *testing.T, k *Cache) {
	t.Helper()
	resp, err := k.c.Etcd().Get(testCtx(t), "sync")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRevision(testCtx(t), resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
}

func TestCacheApplyAndWatchDedupe(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "t")
	k := runCache(t, c, nil)

	e := entry(0, 5, 100)
	e.Epoch = epoch
	commitOK(t, s, tp, epoch, e)
	k.Apply(tp, e) // the leader's own commit is readable at once
	if hwm := k.HighWatermark(tp); hwm != 5 {
		t.Fatalf("high watermark after Apply %d, want 5", hwm)
	}
	syncCache(t, k) // the watch brings the same entry: ignored
	if got := k.Entries(tp, 0, math.MaxInt64); len(got) != 1 || k.HighWatermark(tp) != 5 || got[0].Epoch != epoch {
		t.Fatalf("after watch: hwm %d entries %+v", k.HighWatermark(tp), got)
	}
	k.Apply(tp, e)                                   // and applying again changes nothing
	k.Apply(tp, entry(7, 1, 1))                      // a gap: ignored
	k.Apply(TP{Topic: NewTopicID()}, entry(0, 1, 1)) // unknown topic: ignored
	if got := k.Entries(tp, 0, math.MaxInt64); len(got) != 1 || k.HighWatermark(tp) != 5 {
		t.Fatalf("after re-Apply: hwm %d entries %+v", k.HighWatermark(tp), got)
	}

	// Without Apply, the watch alone advances the high watermark.
	wait := k.WaitAdvance(tp, 5)
	commitOK(t, s, tp, epoch, entry(5, 5, 100))
	waitChan(t, wait, "high watermark advance by watch")
	if hwm := k.HighWatermark(tp); hwm != 10 {
		t.Fatalf("high watermark %d, want 10", hwm)
	}
	waitChan(t, k.WaitAdvance(tp, 5), "WaitAdvance on a stale high watermark")
}

func TestCacheWaitWakesOnCommitFromAnotherClient(t *testing.T) {
	te := newTestEtcd(t)
	reader := te.client(t)
	writer := te.client(t)
	s, tp, epoch := leaderOf(t, writer, "t")
	k := runCache(t, reader, nil)
	syncCache(t, k)

	wait := k.Wait(tp)
	notClosed(t, wait, "Wait before any commit")
	commitOK(t, s, tp, epoch, entry(0, 3, 10))
	waitChan(t, wait, "Wait after a commit by another client")
	if hwm := k.HighWatermark(tp); hwm != 3 {
		t.Fatalf("high watermark %d, want 3", hwm)
	}
	notClosed(t, k.Wait(tp), "Wait after the advance it reported")
	closedNow := k.Wait(TP{Topic: NewTopicID()})
	waitChan(t, closedNow, "Wait on an unknown partition")
}

func TestCacheEntriesAndBounds(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "t")
	k := runCache(t, c, nil)
	if k.HighWatermark(tp) != 0 || k.LogStart(tp) != 0 || k.Entries(tp, 0, 1) != nil {
		t.Fatal("empty partition not empty")
	}
	for base := int64(0); base < 50; base += 10 {
		commitOK(t, s, tp, epoch, entry(base, 10, 100))
	}
	syncCache(t, k)

	for _, tc := range []struct {
		from, maxBytes int64
		bases          []int64
	}{
		{0, 1, []int64{0}},
		{15, 150, []int64{10, 20}},
		{15, 200, []int64{10, 20}},
		{15, 201, []int64{10, 20, 30}},
		{49, math.MaxInt64, []int64{40}},
		{0, math.MaxInt64, []int64{0, 10, 20, 30, 40}},
		{50, math.MaxInt64, nil},
		{-1, math.MaxInt64, nil},
	} {
		got := k.Entries(tp, tc.from, tc.maxBytes)
		var bases []int64
		for _, e := range got {
			bases = append(bases, e.BaseOffset)
		}
		if len(bases) != len(tc.bases) || (len(bases) > 0 && (bases[0] != tc.bases[0] || bases[len(bases)-1] != tc.bases[len(tc.bases)-1])) {
			t.Errorf("Entries(from %d, max %d) bases %v, want %v", tc.from, tc.maxBytes, bases, tc.bases)
		}
	}
	if k.LogStart(tp) != 0 || k.HighWatermark(tp) != 50 {
		t.Fatalf("LogStart %d HWM %d", k.LogStart(tp), k.HighWatermark(tp))
	}

	// Retention moves the log start: entries wholly below it go, with one key.
	wait := k.Wait(tp)
	if _, err := c.Etcd().Put(testCtx(t), c.keys.logStart(tp), "20"); err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	waitChan(t, wait, "fetches waiting woken by a log start move")
	if k.LogStart(tp) != 20 || k.HighWatermark(tp) != 50 || k.Entries(tp, 5, 1) != nil {
		t.Fatalf("after retention: LogStart %d HWM %d", k.LogStart(tp), k.HighWatermark(tp))
	}

	// Compaction replaces a run by one segment in one Txn: the entries it covers leave the view.
	seg := IndexEntry{BaseOffset: 20, LastOffset: 39, Epoch: epoch, Bytes: 150,
		Segment: &Segment{Object: "part/x", Level: 1, FooterPos: 182, FooterLen: 40}}
	if _, err := c.Etcd().Put(testCtx(t), c.keys.segment(tp, 20), mustJSON(t, seg)); err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	got := k.Entries(tp, 35, math.MaxInt64)
	if len(got) != 2 || got[0].Segment == nil || got[0].BaseOffset != 20 || got[0].LastOffset != 39 || got[1].BaseOffset != 40 {
		t.Fatalf("after compaction: %+v", got)
	}
	// Every record but the last one's is dead now: covered, or below the log start.
	if dead := k.DeadRecords(); len(dead) != 4 {
		t.Fatalf("dead records after retention and compaction: %v, want 4", dead)
	}
}

func TestCacheTopicDeleteWakesWaiters(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "doomed")
	commitOK(t, s, tp, epoch, entry(0, 1, 1))
	k := runCache(t, c, nil)
	if _, ok := k.Leader(tp); !ok {
		t.Fatal("leader missing")
	}
	wait, changed := k.Wait(tp), k.Changed()
	if err := c.DeleteTopic(testCtx(t), "doomed"); err != nil {
		t.Fatal(err)
	}
	waitChan(t, wait, "Wait of a deleted topic")
	waitChan(t, changed, "Changed after a topic delete")
	syncCache(t, k)
	if _, ok := k.Topic("doomed"); ok {
		t.Fatal("deleted topic still cached")
	}
	if _, ok := k.TopicByID(tp.Topic); ok {
		t.Fatal("deleted topic still cached by id")
	}
	if _, ok := k.Leader(tp); ok || k.HighWatermark(tp) != 0 {
		t.Fatal("deleted topic's partition state still cached")
	}
	// Re-created under the same name, it starts empty.
	again := newTopic(t, c, "doomed", 1)
	syncCache(t, k)
	if top, ok := k.Topic("doomed"); !ok || top.ID != again.ID || k.HighWatermark(again.TP(0)) != 0 {
		t.Fatalf("re-created topic: %+v %v", top, ok)
	}
}

func TestCacheTopicsAgentsLeaders(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	k := runCache(t, c, nil)
	changed := k.Changed()
	newTopic(t, c, "b", 2)
	a := newTopic(t, c, "a", 1)
	waitChan(t, changed, "Changed after topic creation")
	s := newSession(t, c, "z", "127.0.0.1:9")
	newSession(t, c, "y", "127.0.0.1:8")
	epoch, err := rev(s.Acquire(testCtx(t), a.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	if ts := k.Topics(); len(ts) != 2 || ts[0].Name != "a" || ts[1].Name != "b" {
		t.Fatalf("Topics = %+v", ts)
	}
	if top, ok := k.TopicByID(a.ID); !ok || top.Name != "a" {
		t.Fatalf("TopicByID = %+v %v", top, ok)
	}
	if as := k.Agents(); len(as) != 2 || as[0].ID != "y" || as[1].ID != "z" || as[1].AZ != "az1" {
		t.Fatalf("Agents = %+v", as)
	}
	if l, ok := k.Leader(a.TP(0)); !ok || l.Agent != "z" || l.Rev != epoch || l.Epoch != 1 {
		t.Fatalf("Leader = %+v %v", l, ok)
	}
	changed = k.Changed()
	if err := s.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitChan(t, changed, "Changed after an agent left")
	syncCache(t, k)
	if _, ok := k.Leader(a.TP(0)); ok || len(k.Agents()) != 1 {
		t.Fatal("closed session's agent or leadership still cached")
	}

	// A revision made outside the prefix brings no event: WaitRevision asks for progress.
	put, err := c.Etcd().Put(testCtx(t), "/outside/"+te.Prefix, "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRevision(testCtx(t), put.Header.Revision); err != nil {
		t.Fatal(err)
	}
}

func TestCacheReloadsAfterCompaction(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "t")
	commitOK(t, s, tp, epoch, entry(0, 1, 1))

	var loads atomic.Int32
	var wait <-chan struct{}
	reloaded := make(chan struct{})
	k := runCache(t, c, func(k *Cache, rev int64) {
		switch loads.Add(1) {
		case 1:
			// Between the load and the watch: more commits, then etcd compacts them away, so
			// the watch from rev+1 is refused.
			wait = k.Wait(tp)
			commitOK(t, s, tp, epoch, entry(1, 4, 1))
			commitOK(t, s, tp, epoch, entry(5, 5, 1))
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
	waitChan(t, wait, "Wait across a reload that advanced the partition")
	if hwm := k.HighWatermark(tp); hwm != 10 {
		t.Fatalf("high watermark after reload %d, want 10", hwm)
	}
	// And the watch goes on after the reload.
	w := k.WaitAdvance(tp, 10)
	commitOK(t, s, tp, epoch, entry(10, 1, 1))
	waitChan(t, w, "advance after reload")
}

// TestCacheApplyAll: a flush's commits applied together are each readable at once, with their bytes
// counted, and ApplyAll ignores what Apply ignores (an entry already held, a gap, an unknown topic).
func TestCacheApplyAll(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	topic := newTopic(t, c, "all", 2)
	s := newSession(t, c, "leader-all", "127.0.0.1:1")
	var commits []Commit
	for p := range int32(2) {
		epoch, err := rev(s.Acquire(testCtx(t), topic.TP(p), EpochHint{}))
		if err != nil {
			t.Fatal(err)
		}
		e := entry(0, 5+int64(p), 100)
		e.Epoch = epoch
		commits = append(commits, Commit{TP: topic.TP(p), Epoch: epoch, Entry: e})
	}
	for _, err := range s.Commit(testCtx(t), commits) {
		if err != nil {
			t.Fatal(err)
		}
	}
	k := runCache(t, c, nil)
	syncCache(t, k)
	more := []Commit{
		{TP: topic.TP(0), Epoch: commits[0].Epoch, Entry: entry(5, 3, 40)},
		{TP: topic.TP(1), Epoch: commits[1].Epoch, Entry: entry(6, 2, 60)},
		{TP: topic.TP(1), Entry: entry(9, 1, 1)},                            // a gap: ignored
		{TP: TP{Topic: NewTopicID()}, Entry: entry(0, 1, 1)},                // unknown topic: ignored
		{TP: topic.TP(0), Epoch: commits[0].Epoch, Entry: commits[0].Entry}, // already held: ignored
	}
	k.ApplyAll(more)
	for i, want := range []struct{ hwm, bytes int64 }{{8, 140}, {8, 160}} {
		tp := topic.TP(int32(i))
		got := k.Entries(tp, 0, math.MaxInt64)
		var bytes int64
		for _, e := range got {
			bytes += e.Bytes
		}
		if hwm := k.HighWatermark(tp); hwm != want.hwm || len(got) != 2 || bytes != want.bytes {
			t.Fatalf("partition %d after ApplyAll: hwm %d (want %d), entries %+v, bytes %d (want %d)", i, hwm, want.hwm, got, bytes, want.bytes)
		}
	}
}
