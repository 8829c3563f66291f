package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/extcache"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// A cold fetch of 8 partitions reads each flush object once: one flush writes every partition's
// batches back to back, and the extents one object holds for the fetch are one GET, not 8.
func TestColdFetchReadsEachObjectOnce(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a")
	const partitions = 8
	createTopic(t, kgoClient(t, nil, a), "t", partitions, nil)
	cl := kgoClient(t, []kgo.Opt{kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, a)
	var produced []*kgo.Record
	for i := range 4 {
		produced = append(produced, produceN(t, cl, "t", fmt.Sprint("v", i), 400)...)
	}
	objects, extents := map[string]bool{}, 0
	for p := range int32(partitions) {
		for _, e := range a.cache.Entries(topicTP(t, a, "t", p), 0, 1<<30) {
			for _, x := range e.Extents {
				objects[x.Object] = true
				extents++
			}
		}
	}
	if extents <= len(objects) {
		t.Fatalf("%d extents in %d objects: the test needs objects of several partitions", extents, len(objects))
	}

	a.reader.Purge()
	var gets atomic.Int32
	tc.store.SetFault(segstore.OpGetRange, func(string) error { gets.Add(1); return nil })
	req := fetchAllReq("t", partitions)
	resp, _, _ := a.fillFetch(testCtx(t), req, "")
	var answered int
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 {
			t.Fatalf("partition %d: error %d", p.Partition, p.ErrorCode)
		}
		answered += len(p.RecordBatches)
	}
	if answered == 0 {
		t.Fatal("the fetch answered no records")
	}
	if got := int(gets.Load()); got != len(objects) {
		t.Errorf("a fetch of %d extents in %d objects made %d GETs, want one per object", extents, len(objects), got)
	}
	tc.store.SetFault(segstore.OpGetRange, nil)
	checkDense(t, produced, consumeAll(t, []*Agent{a}, "t", len(produced)))
}

// One corrupt extent of a coalesced read fails alone: the others of the same GET are served, and
// it is neither served nor cached.
func TestCoalescedReadFailsOnlyTheCorruptExtent(t *testing.T) {
	tc := newTestCluster(t)
	store := &flippingStore{objectStore: tc.store}
	a := startAgent(t, newAgentVia(t, tc, "a", sharedEtcd[0], store))
	const partitions = 4
	createTopic(t, kgoClient(t, nil, a), "t", partitions, nil)
	cl := kgoClient(t, []kgo.Opt{kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, a)
	produceN(t, cl, "t", "v", 40)
	var all []coord.Extent
	for p := range int32(partitions) {
		for _, e := range a.cache.Entries(topicTP(t, a, "t", p), 0, 1<<30) {
			all = append(all, e.Extents...)
		}
	}
	runs := extcache.Coalesce(slices.Clone(all), a.reader.MaxRun())
	run := slices.MaxFunc(runs, func(x, y []coord.Extent) int { return len(x) - len(y) })
	if len(run) < 2 {
		t.Fatalf("no two extents of %v share a GET", all)
	}
	bad := run[1]

	a.reader.Purge()
	store.flip(bad.Object, bad.Pos+int64(bad.Len)/2)
	if n := a.reader.StartAll(extcache.Plan{Now: run}, prefetchMaxReads); n != 1 {
		t.Fatalf("%d extents of one object started %d GETs, want 1", len(run), n)
	}
	for _, e := range run {
		data, err := a.reader.Extent(testCtx(t), e)
		if e == bad {
			if !errors.Is(err, segstore.ErrCorrupt) {
				t.Errorf("the corrupt extent read as %d bytes, error %v; want ErrCorrupt", len(data), err)
			}
			continue
		}
		if err != nil || len(data) != int(e.Len) {
			t.Errorf("extent at %d of the same GET: %d bytes, error %v", e.Pos, len(data), err)
		}
	}
	cachedBad, size := a.reader.Cached(bad), a.reader.Stats().Bytes
	if cachedBad {
		t.Error("the corrupt extent was cached")
	}
	// The extents served keep the whole body of their GET: the cache is charged for it once.
	if from, to := extcache.Span(run); size != to-from {
		t.Errorf("the cache holds %d bytes after one GET of %d", size, to-from)
	}
}

// flippingStore flips the byte at one position of one object, once set, in every ranged read that
// covers it.
type flippingStore struct {
	objectStore
	mu     sync.Mutex
	object string
	at     int64
}

func (s *flippingStore) flip(object string, at int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.object, s.at = object, at
}

func (s *flippingStore) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	b, err := s.objectStore.GetRange(ctx, key, off, length)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil && key == s.object && off <= s.at && s.at < off+int64(len(b)) {
		b = slices.Clone(b)
		b[s.at-off] ^= 0x10
	}
	return b, err
}

// A consumer of one partition reads the partition's batches that one flush wrote back to back, also
// past the fetch's read-ahead (it will fetch them next), with one GET besides the answer's own; the
// answer does not wait for it.
func TestColdReadTakesThePartitionsRunInTheObject(t *testing.T) {
	const batches = 3 * readAhead // more than one fetch of one batch reads ahead
	batch := func(i int) []byte { return valueBatch(-1, -1, -1, nil, fmt.Sprintf("v%04d", i)) }
	size := int64(len(batch(0)))
	tc := newTestCluster(t)
	// Only size starts a flush: all the batches go into one object.
	store := &heldLongReads{objectStore: tc.store, over: size, release: make(chan struct{})}
	a := startAgent(t, newAgentVia(t, tc, "a", sharedEtcd[0], store, func(c *Config) { c.FlushInterval, c.FlushBytes = time.Hour, batches*size }))
	createLedTopic(t, kgoClient(t, nil, a), a, "one", 1, nil)
	conns := make([]*rawConn, batches)
	for i := range conns {
		conns[i] = dialRaw(t, a)
	}
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			if p := producePart(t, c.roundTrip(produceReq("one", -1, map[int32][]byte{0: batch(i)}), produceVersion)); p.ErrorCode != 0 {
				t.Errorf("produce %d: %s", i, errName(p.ErrorCode))
			}
		})
	}
	wg.Wait()
	var extents []coord.Extent
	for _, e := range a.cache.Entries(topicTP(t, a, "one", 0), 0, 1<<30) {
		extents = append(extents, e.Extents...)
	}
	if len(extents) != batches || len(extcache.Coalesce(slices.Clone(extents), a.reader.MaxRun())) != 1 {
		t.Fatalf("%d extents, want %d back to back in one object: %v", len(extents), batches, extents)
	}

	a.reader.Purge()
	var gets atomic.Int32
	tc.store.SetFault(segstore.OpGetRange, func(string) error { gets.Add(1); return nil })
	// kgo's limits: 50 MiB a fetch; here a batch a partition, so the read-ahead covers a few of them.
	resp := conns[0].roundTrip(fetchReq("one", 0, 1, 50<<20, fetchPart{0, 0, int32(size)}), fetchVersion).(*kmsg.FetchResponse)
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
		t.Fatalf("the fetch answered %d bytes, error %s", len(p.RecordBatches), errName(p.ErrorCode))
	}
	close(store.release) // the read ahead was held until the answer came
	waitFor(t, "the reads to finish", func() bool {
		return a.reader.Stats().Reads == 0
	})
	cached := a.reader.Stats().Extents
	if got := gets.Load(); got != 2 || cached != batches {
		t.Errorf("a fetch of one batch of %d in one object: %d GETs, %d batches cached; want all of them in 2", batches, got, cached)
	}
}

// heldLongReads holds every ranged read of more than over bytes until release is closed.
type heldLongReads struct {
	objectStore
	over    int64
	release chan struct{}
}

func (s *heldLongReads) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if length > s.over {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return s.objectStore.GetRange(ctx, key, off, length)
}

// An index extent of negative length, coalesced with a good one, fails alone and panics nothing.
func TestCoalescedReadRefusesANegativeLength(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a")
	createTopic(t, kgoClient(t, nil, a), "t", 1, nil)
	produceN(t, kgoClient(t, nil, a), "t", "v", 10)
	good := a.cache.Entries(topicTP(t, a, "t", 0), 0, 1<<30)[0].Extents[0]
	bad := coord.Extent{Object: good.Object, Pos: good.Pos + int64(good.Len), Len: -5}
	a.reader.Purge()
	if n := a.reader.StartAll(extcache.Plan{Now: []coord.Extent{good, bad}}, prefetchMaxReads); n != 1 {
		t.Fatalf("started %d GETs, want the two extents in one", n)
	}
	// The bad one first: it waits on the coalesced GET (a read of it alone fails in the store).
	if _, err := a.reader.Extent(testCtx(t), bad); !errors.Is(err, segstore.ErrCorrupt) {
		t.Errorf("an extent of length -5 read as %v, want ErrCorrupt", err)
	}
	if data, err := a.reader.Extent(testCtx(t), good); err != nil || len(data) != int(good.Len) {
		t.Errorf("the good extent: %d bytes, %v", len(data), err)
	}
}
