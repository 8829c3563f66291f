package agent

import (
	"sync/atomic"
	"testing"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// The agent that wrote an object serves its extents from its cache: consumers tailing the log cost no
// GET. One whose cache is off reads them from the store, and gets the same records.
func TestFetchServesWhatItWroteFromCache(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cacheBytes int64
		wantGets   bool
	}{
		{"write-through", 64 << 20, false},
		{"cache off", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := newTestCluster(t)
			var gets atomic.Int64
			cluster.store.SetFault(segstore.OpGetRange, func(string) error { gets.Add(1); return nil })
			a := cluster.agent("a", func(c *Config) { c.CacheBytes = tc.cacheBytes })
			createTopic(t, kgoClient(t, nil, a), "t", 3, nil)
			produced := produceN(t, kgoClient(t, nil, a), "t", "v", 300)
			checkDense(t, produced, consumeAll(t, []*Agent{a}, "t", len(produced)))
			if got := gets.Load() > 0; got != tc.wantGets {
				t.Errorf("%d GETs reading back what the agent wrote; want GETs: %v", gets.Load(), tc.wantGets)
			}
		})
	}
}

// purge empties the cache, so that the next reads go to the store.
func (r *reader) purge() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, el := range r.items {
		c := el.Value.(*cached)
		r.size -= r.charge(len(c.data), c.backing, -1)
	}
	r.lru.Init()
	clear(r.items)
}

// The cache keeps a produced batch as the slice of its request frame that it is, and charges the
// frame once, while any of its batches is cached: its budget bounds the memory it holds.
func TestCacheChargesRequestFrames(t *testing.T) {
	const max = 1 << 20
	a := newTestCluster(t).agent("a", func(c *Config) { c.CacheBytes = max })
	r := a.reader
	r.purge()
	ext := func(i int) coord.Extent { return coord.Extent{Object: "o", Pos: int64(i), Len: 10} }
	size := func() int64 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.size
	}
	has := func(e coord.Extent) bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.items[e] != nil
	}

	body := make([]byte, 100<<10) // one request frame of 100 KiB: three batches of it
	f := &backing{size: int64(len(body))}
	r.keep(ext(0), body[:10], f)
	r.keep(ext(1), body[10:20], f)
	r.keep(ext(2), body[20:30], f)
	if got := size(); got != f.size {
		t.Fatalf("three batches of one %d-byte frame charged %d", f.size, got)
	}
	r.keep(ext(3), make([]byte, 10), nil)
	if got := size(); got != f.size+10 {
		t.Fatalf("a batch without a frame: cache at %d, want %d", got, f.size+10)
	}

	// Filling the cache with other frames evicts the oldest entries: the first frame's charge goes
	// only with its last batch.
	for i := 4; size() <= max-f.size || has(ext(0)); i++ {
		g := &backing{size: 100 << 10}
		r.keep(ext(i), make([]byte, 10), g)
		if i > 100 {
			t.Fatal("the cache never evicted the first frame's batches")
		}
	}
	if got := size(); got > max {
		t.Errorf("cache at %d, over its %d", got, max)
	}
	if !has(ext(1)) && !has(ext(2)) && f.cached != 0 {
		t.Errorf("the first frame's batches are gone but %d still counted", f.cached)
	}

	// A frame larger than an eighth of the cache is not held for one batch: the batch is copied out.
	big := make([]byte, max/4)
	r.keep(ext(1000), big[:10], &backing{size: int64(len(big))})
	r.mu.Lock()
	c := r.items[ext(1000)].Value.(*cached)
	r.mu.Unlock()
	if c.backing != nil || &c.data[0] == &big[0] {
		t.Error("a batch of a frame of a quarter of the cache was kept in place")
	}
}
