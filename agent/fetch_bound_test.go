package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// heldObjects is an object store whose range reads of the objects it holds wait until they are
// released (or their context ends): an object store slower than any client waits.
type heldObjects struct {
	objectStore
	mu      sync.Mutex
	held    map[string]bool
	release chan struct{}
}

func newHeldObjects(s objectStore) *heldObjects {
	return &heldObjects{objectStore: s, held: map[string]bool{}, release: make(chan struct{})}
}

func (s *heldObjects) hold(object string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[object] = true
}

func (s *heldObjects) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	s.mu.Lock()
	held := s.held[key]
	s.mu.Unlock()
	if held {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.objectStore.GetRange(ctx, key, off, length)
}

// coldHistory writes n small batches to topic on an agent of its own, each in an object of its own
// (one flush each), stops that agent, and returns the objects by offset. No maintenance runs: the
// entries stay one per object, as a history of small flushes is before compaction (readers of it pass
// noMaintenance too).
func coldHistory(t *testing.T, tc *testCluster, topic string, n int) []string {
	t.Helper()
	a1 := tc.agent("writer", noMaintenance)
	c := ledTopicConn(t, a1, topic)
	for i := range n {
		wantOK(t, "produce", c.produceOne(topic, 0, valueBatch(-1, -1, -1, nil, fmt.Sprint("v", i))).ErrorCode)
	}
	var objects []string
	for _, e := range a1.cache.Entries(topicTP(t, a1, topic, 0), 0, 1<<40) {
		objects = append(objects, e.Extents[0].Object)
	}
	if len(objects) != n {
		t.Fatalf("%d index entries, want one per batch (%d)", len(objects), n)
	}
	if err := a1.Shutdown(testCtx(t)); err != nil { // its cache holds every batch: clients read elsewhere
		t.Fatal(err)
	}
	return objects
}

// fetchFrom fetches partition 0 of topic from offset without waiting, and checks that what it returns
// starts at offset and has no gap: it returns the next offset to fetch.
func fetchFrom(t *testing.T, c *rawConn, topic string, offset int64, seen *[]string) int64 {
	t.Helper()
	sp := c.fetchOne(topic, 0, offset, 1<<20)
	wantOK(t, fmt.Sprintf("fetch from %d", offset), sp.ErrorCode)
	for _, r := range decodeRecords(t, sp) {
		if r.Offset != offset {
			t.Fatalf("fetch returned offset %d, want %d (out of order or a gap)", r.Offset, offset)
		}
		*seen = append(*seen, string(r.Value))
		offset++
	}
	return offset
}

// Found by a kcat consumer reading a long history of small flushes after a restart: its first fetch
// waited for tens of thousands of GETs and the client gave up (librdkafka's 60 s socket timeout). A
// fetch answers within its MaxWait and the read bound with what it has read, a prefix of its answer,
// possibly nothing; the next fetch goes on from there.
func TestFetchAnswersWithinReadBound(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	const n, readable = 40, 10
	objects := coldHistory(t, tc, "slow", n)
	store := newHeldObjects(tc.store)
	for _, o := range objects[readable:] {
		store.hold(o)
	}
	a2 := startAgent(t, newAgentVia(t, tc, "reader", sharedEtcd[0], store, noMaintenance, func(c *Config) { c.FetchReadTimeout = fetchBoundForTests }))
	tp := topicTP(t, a2, "slow", 0)
	waitFor(t, "the reader to see every batch", func() bool { return a2.cache.HighWatermark(tp) == n })
	c := dialRaw(t, a2)

	var seen []string
	next := int64(0)
	waitFor(t, "fetches to read every readable batch", func() bool {
		next = fetchFrom(t, c, "slow", next, &seen)
		return next == readable
	})
	// The rest is held: the fetch answers nothing rather than wait for it.
	if got := fetchFrom(t, c, "slow", next, &seen); got != readable {
		t.Fatalf("fetch at %d went on to %d past held reads", next, got)
	}
	close(store.release)
	waitFor(t, "fetches to read every batch once released", func() bool {
		next = fetchFrom(t, c, "slow", next, &seen)
		return next == n
	})
	for i, v := range seen {
		if v != fmt.Sprint("v", i) {
			t.Fatalf("record %d is %q, want v%d", i, v, i)
		}
	}
	if metricValue(t, a2, "streamhouse_fetch_read_timeouts_total") == 0 {
		t.Error("no fetch counted as answered at its read bound")
	}
}

// Reads that fetches answered without go on, but what they hold is bounded: fetch after fetch, each
// answered at its read bound while the object store holds every read, keeps the bytes of reads in
// flight within MaxReadBytesInFlight (or one read alone).
func TestAbandonedReadsAreBounded(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	const n = 40
	objects := coldHistory(t, tc, "stuck", n)
	store := newHeldObjects(tc.store)
	for _, o := range objects {
		store.hold(o)
	}
	t.Cleanup(func() { close(store.release) })
	const inFlight = 200 // about three batches
	a2 := startAgent(t, newAgentVia(t, tc, "reader", sharedEtcd[0], store, noMaintenance, func(c *Config) {
		c.FetchReadTimeout, c.MaxReadBytesInFlight = fetchBoundForTests, inFlight
	}))
	tp := topicTP(t, a2, "stuck", 0)
	waitFor(t, "the reader to see every batch", func() bool { return a2.cache.HighWatermark(tp) == n })
	c := dialRaw(t, a2)
	for offset := int64(0); offset < n; offset += 5 {
		var seen []string
		if got := fetchFrom(t, c, "stuck", offset, &seen); got != offset {
			t.Fatalf("fetch from %d read to %d from a store that holds every read", offset, got)
		}
		st := a2.reader.Stats()
		bytes, reads := st.ReadBytes, st.Reads
		if bytes > inFlight && reads > 1 {
			t.Fatalf("after a fetch from %d: %d reads of %d bytes in flight, want at most %d bytes or one read", offset, reads, bytes, inFlight)
		}
	}
	if metricValue(t, a2, "streamhouse_fetch_reads_deferred_total") == 0 {
		t.Error("no read counted as deferred")
	}
}

// fetchBoundForTests is the fetch read bound of agents whose reads a test holds: short, since every
// fetch that meets a held read waits it out.
const fetchBoundForTests = 100 * time.Millisecond

// slowReads is an object store whose range reads take at least delay.
type slowReads struct {
	objectStore
	delay time.Duration
}

func (s slowReads) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	time.Sleep(s.delay) // the store's latency, not a synchronization
	return s.objectStore.GetRange(ctx, key, off, length)
}

// A read the cache cannot keep would be started again by every fetch and, slower than the read bound,
// never served: a fetch waits for its first one, so that a consumer always progresses.
func TestUncachedSlowReadsProgress(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	const n = 5
	coldHistory(t, tc, "uncached", n)
	store := slowReads{tc.store, 5 * fetchBoundForTests}
	a2 := startAgent(t, newAgentVia(t, tc, "reader", sharedEtcd[0], store, noMaintenance, func(c *Config) {
		c.FetchReadTimeout, c.CacheBytes = fetchBoundForTests, 0
	}))
	tp := topicTP(t, a2, "uncached", 0)
	waitFor(t, "the reader to see every batch", func() bool { return a2.cache.HighWatermark(tp) == n })
	c := dialRaw(t, a2)
	var seen []string
	for next := int64(0); next < n; {
		got := fetchFrom(t, c, "uncached", next, &seen)
		if got == next {
			t.Fatalf("a fetch from %d over uncached reads slower than the read bound answered nothing", next)
		}
		next = got
	}
}

// A franz-go consumer reading a history of small objects from a slow store, through fetches answered at
// their read bound with a prefix (or nothing), reads every record once, in order.
func TestConsumerReadsSlowHistoryThroughShortAnswers(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	const n = 150
	coldHistory(t, tc, "history", n)
	store := slowReads{tc.store, 20 * time.Millisecond}
	a2 := startAgent(t, newAgentVia(t, tc, "reader", sharedEtcd[0], store, noMaintenance, func(c *Config) {
		c.FetchReadTimeout, c.MaxReadBytesInFlight = fetchBoundForTests/4, 1<<10
	}))
	tp := topicTP(t, a2, "history", 0)
	waitFor(t, "the reader to see every batch", func() bool { return a2.cache.HighWatermark(tp) == n })
	recs := consumeAll(t, []*Agent{a2}, "history", n, kgo.FetchMaxWait(10*time.Millisecond))
	for i, r := range recs {
		if r.Offset != int64(i) || string(r.Value) != fmt.Sprint("v", i) {
			t.Fatalf("record %d: offset %d value %q", i, r.Offset, r.Value)
		}
	}
	if metricValue(t, a2, "streamhouse_fetch_read_timeouts_total") == 0 {
		t.Error("no fetch was answered at its read bound: the test did not exercise it")
	}
}
