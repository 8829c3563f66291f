package extcache

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// The cache keeps a produced batch as the slice of its request frame that it is, and charges the
// frame once, while any of its batches is cached: its budget bounds the memory it holds.
func TestCacheChargesRequestFrames(t *testing.T) {
	const max = 1 << 20
	r := newTestCache(t, max)
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
	f := &Backing{size: int64(len(body))}
	r.Keep(ext(0), body[:10], f)
	r.Keep(ext(1), body[10:20], f)
	r.Keep(ext(2), body[20:30], f)
	if got := size(); got != f.size {
		t.Fatalf("three batches of one %d-byte frame charged %d", f.size, got)
	}
	r.Keep(ext(3), make([]byte, 10), nil)
	if got := size(); got != f.size+10 {
		t.Fatalf("a batch without a frame: cache at %d, want %d", got, f.size+10)
	}

	// Filling the cache with other frames evicts the oldest entries: the first frame's charge goes
	// only with its last batch.
	for i := 4; size() <= max-f.size || has(ext(0)); i++ {
		g := &Backing{size: 100 << 10}
		r.Keep(ext(i), make([]byte, 10), g)
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
	r.Keep(ext(1000), big[:10], &Backing{size: int64(len(big))})
	r.mu.Lock()
	c := r.items[ext(1000)].Value.(*cached)
	r.mu.Unlock()
	if c.backing != nil || &c.data[0] == &big[0] {
		t.Error("a batch of a frame of a quarter of the cache was kept in place")
	}
}

// newTestCache is a cache of max bytes over a store that holds nothing.
func newTestCache(t *testing.T, max int64) *Cache {
	t.Helper()
	return New(Config{MaxBytes: max, MaxInFlight: max, Store: emptyStore{}, Log: hclog.NewNullLogger(),
		Go: func(fn func(context.Context)) { go fn(t.Context()) },
		Metrics: Metrics{
			Hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "hits"}), Misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "misses"}),
			Bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bytes"}), Corrupt: prometheus.NewCounter(prometheus.CounterOpts{Name: "corrupt"}),
			InFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "in_flight"}), Deferred: prometheus.NewCounter(prometheus.CounterOpts{Name: "deferred"}),
		}})
}

type emptyStore struct{}

func (emptyStore) GetRange(context.Context, string, int64, int64) ([]byte, error) {
	return nil, segstore.ErrNotFound
}
