package extcache

import (
	"context"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
)

// Store is the one object store read the cache makes: a ranged GET.
type Store interface {
	GetRange(ctx context.Context, key string, off, length int64) ([]byte, error)
}

// Metrics are the cache's counters; their owner names and registers them.
type Metrics struct {
	Hits     prometheus.Counter // reads served from the cache
	Misses   prometheus.Counter // reads that went to the store
	Bytes    prometheus.Gauge   // bytes the cache holds
	Corrupt  prometheus.Counter // extents that failed their CRC
	InFlight prometheus.Gauge   // bytes of GETs under way
	Deferred prometheus.Counter // reads not started at once for want of room among those in flight
}

// Config is what a Cache needs.
type Config struct {
	MaxBytes    int64 // the cache's budget; 0 or less: nothing is kept past the reads that wait for it
	MaxInFlight int64 // bytes of GETs under way at once (one GET always starts)
	Store       Store
	Metrics     Metrics
	Log         hclog.Logger
	// Go runs fn on a goroutine its owner accounts for (and waits for on shutdown), with the owner's
	// run context: a read in flight ends when it ends.
	Go func(fn func(ctx context.Context))
}

// Max is the cache's budget in bytes.
func (r *Cache) Max() int64 { return r.max }

// Purge empties the cache, so that the next reads go to the store; reads under way are left to land.
func (r *Cache) Purge() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, el := range r.items {
		c := el.Value.(*cached)
		r.size -= r.charge(len(c.data), c.backing, -1)
	}
	r.lru.Init()
	clear(r.items)
}

// Stats is a snapshot of what the cache holds and reads.
type Stats struct {
	Bytes     int64 // charged to the budget
	Extents   int   // cached
	Reads     int   // extents being read
	ReadBytes int64 // bytes of the GETs under way
	ReadLen   int64 // the lengths of the extents being read, summed
}

// Stats returns a snapshot of the cache.
func (r *Cache) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Stats{Bytes: r.size, Extents: len(r.items), Reads: len(r.inflight), ReadBytes: r.inBytes}
	for e := range r.inflight {
		st.ReadLen += int64(e.Len)
	}
	return st
}

// Cached reports whether e is in the cache.
func (r *Cache) Cached(e coord.Extent) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.items[e] != nil
}
