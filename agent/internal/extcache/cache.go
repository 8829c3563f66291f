package extcache

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/internal/future"
	"github.com/streamhouse/streamhouse/segstore"
)

// Cache reads stored extents through an LRU cache. Concurrent reads of one extent share one GET.
//
// A read runs to its end whoever waits for it: a fetch that answers at its read bound leaves its reads
// to land in the cache, where its next fetch finds them. What such reads hold is bounded by maxInFlight,
// the bytes of GETs under way at once: a client sending fetch after fetch, each answered before its
// reads end, cannot make them pile up.
type Cache struct {
	store       Store
	m           Metrics
	log         hclog.Logger
	goRun       func(func(context.Context))
	max         int64
	maxInFlight int64

	mu       sync.Mutex
	size     int64
	lru      *list.List // of *cached, most recent at the front
	items    map[coord.Extent]*list.Element
	inflight map[coord.Extent]*readCall
	inBytes  int64         // bytes of the GETs under way
	freed    chan struct{} // closed and replaced when a GET ends
}

type cached struct {
	key     coord.Extent
	data    []byte
	backing *Backing // what data is a slice of and holds in memory; nil: data alone
}

// Backing is a buffer whose slices the cache keeps as they are: a produce request's frame, whose
// partition batches would otherwise be copied (a copy of each would double the produce path's
// allocations), or the body of one GET that read several adjacent extents. The cache charges its size
// once, while any slice of it is cached, since one cached slice keeps the whole buffer in memory.
type Backing struct {
	size   int64
	cached int // slices of it in the cache; under Cache.mu
}

// NewBacking is a buffer of size bytes whose slices the cache may keep.
func NewBacking(size int64) *Backing { return &Backing{size: size} }

// readCall is the read of one extent under way: its verified bytes, or why there are none.
type readCall = future.Future[[]byte]

// New returns an empty cache of cfg; it starts nothing (reads start goroutines through cfg.Go).
func New(cfg Config) *Cache {
	return &Cache{store: cfg.Store, m: cfg.Metrics, log: cfg.Log, goRun: cfg.Go, max: cfg.MaxBytes, maxInFlight: cfg.MaxInFlight,
		lru: list.New(), freed: make(chan struct{}),
		items: make(map[coord.Extent]*list.Element), inflight: make(map[coord.Extent]*readCall)}
}

// Extent returns the verified bytes of e, waiting for its read while ctx lasts. The slice is shared
// and must not be modified. Once ctx has ended it only returns what is cached or already read: it
// starts no read that nobody would wait for.
func (r *Cache) Extent(ctx context.Context, e coord.Extent) ([]byte, error) {
	data, call, err := r.lookup(ctx, e)
	if call == nil {
		return data, err
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		if !call.IsDone() { // not read meanwhile: nothing to serve
			return nil, ctx.Err()
		}
	}
	return call.Result()
}

// lookup returns e's cached bytes, or the read under way that will bring them, starting it if there
// is room among the reads in flight and waiting for room while ctx lasts if there is not.
func (r *Cache) lookup(ctx context.Context, e coord.Extent) ([]byte, *readCall, error) {
	r.mu.Lock()
	for missed, deferred := false, false; ; {
		if el, ok := r.items[e]; ok {
			r.lru.MoveToFront(el)
			r.mu.Unlock()
			r.m.Hits.Inc()
			return el.Value.(*cached).data, nil, nil
		}
		if !missed {
			missed = true
			r.m.Misses.Inc()
		}
		if call, ok := r.inflight[e]; ok {
			r.mu.Unlock()
			return nil, call, nil
		}
		if ctx.Err() == nil && r.roomLocked(int64(max(e.Len, 0))) {
			call := r.startLocked([]coord.Extent{e})[0]
			r.mu.Unlock()
			return nil, call, nil
		}
		freed := r.freed
		r.mu.Unlock()
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		if !deferred {
			deferred = true
			r.m.Deferred.Inc()
		}
		select {
		case <-freed:
		case <-ctx.Done():
		}
		r.mu.Lock()
	}
}

// Cacheable reports whether a read of e is kept for the fetches after the one that started it.
func (r *Cache) Cacheable(e coord.Extent) bool { return int64(e.Len) <= r.max }

// roomLocked reports whether a GET of n more bytes fits among the reads in flight; one GET always
// fits alone.
func (r *Cache) roomLocked(n int64) bool {
	return r.inBytes == 0 || r.inBytes+n <= r.maxInFlight
}

// startLocked registers a read of every extent of run, which coalesce made (one object, close
// together), and starts their one GET; the caller holds r.mu and has checked that none of them is
// cached or in flight.
func (r *Cache) startLocked(run []coord.Extent) []*readCall {
	calls := make([]*readCall, len(run))
	for i, e := range run {
		c := future.Make[[]byte]()
		calls[i] = &c
		r.inflight[e] = calls[i]
	}
	r.inBytes += spanBytes(run)
	r.m.InFlight.Set(float64(r.inBytes))
	r.goRun(func(ctx context.Context) { r.load(ctx, run, calls) })
	return calls
}

// ReadTimeout bounds one GET of extents (GC grace periods must outlast it).
const ReadTimeout = 30 * time.Second

// load GETs the bytes of run, from its first extent to its last, and verifies and caches each extent.
// It runs detached from any one fetch, so that a fetch giving up does not fail the others waiting on
// the same read.
func (r *Cache) load(ctx context.Context, run []coord.Extent, calls []*readCall) {
	ctx, cancel := context.WithTimeout(ctx, ReadTimeout)
	defer cancel()
	from, to := Span(run)
	body, err := r.store.GetRange(ctx, run[0].Object, from, to-from)
	if err == nil && int64(len(body)) != to-from {
		err = fmt.Errorf("object %s: read %d bytes at %d, want %d", run[0].Object, len(body), from, to-from)
	}
	var buf *Backing
	if len(run) > 1 {
		buf = &Backing{size: int64(len(body))}
	}
	datas, errs := make([][]byte, len(run)), make([]error, len(run))
	for i, e := range run {
		if errs[i] = err; err != nil {
			continue
		}
		if e.Len < 0 { // an index entry etcd holds, not one an agent wrote: never sliced
			errs[i] = fmt.Errorf("%w: object %s: extent at %d has length %d", segstore.ErrCorrupt, e.Object, e.Pos, e.Len)
			continue
		}
		datas[i] = body[e.Pos-from : e.Pos-from+int64(e.Len) : e.Pos-from+int64(e.Len)]
		if errs[i] = segstore.VerifyExtent(datas[i], e.CRC); errs[i] != nil {
			datas[i] = nil
			r.m.Corrupt.Inc()
			r.log.Error("stored extent failed its CRC; not served", "object", e.Object, "pos", e.Pos, "len", e.Len)
		}
	}
	r.mu.Lock()
	for i, e := range run {
		delete(r.inflight, e)
		if errs[i] == nil {
			r.add(e, datas[i], buf)
		}
	}
	r.inBytes -= spanBytes(run)
	r.m.InFlight.Set(float64(r.inBytes))
	close(r.freed)
	r.freed = make(chan struct{})
	r.mu.Unlock()
	for i, c := range calls {
		c.Set(datas[i], errs[i])
	}
}

// Span returns the byte range [from, to) of an object that covers every extent of run.
func Span(run []coord.Extent) (from, to int64) {
	from, to = run[0].Pos, run[0].Pos+int64(run[0].Len)
	for _, e := range run[1:] {
		from, to = min(from, e.Pos), max(to, e.Pos+int64(e.Len))
	}
	return from, to
}

// spanBytes is how many bytes the GET of run reads (none for an extent of negative length, which fails).
func spanBytes(run []coord.Extent) int64 {
	from, to := Span(run)
	return max(to-from, 0)
}

// Keep caches data, which this agent has just written as extent e: a slice of frame, or its own
// bytes when frame is nil. data must never be modified.
func (r *Cache) Keep(e coord.Extent, data []byte, frame *Backing) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.items[e]; ok {
		return
	}
	if frame != nil && frame.size > r.max/8 {
		// One batch would keep a large share of the cache's budget for itself: copy it out.
		data, frame = slices.Clone(data), nil
	}
	r.add(e, data, frame)
}

// add caches data as e, charging its backing buffer's size if it has one (once per buffer), then
// evicts the least recently used entries until the cache is within its budget.
func (r *Cache) add(e coord.Extent, data []byte, buf *Backing) {
	if int64(len(data)) > r.max {
		return
	}
	r.items[e] = r.lru.PushFront(&cached{key: e, data: data, backing: buf})
	r.size += r.charge(len(data), buf, +1)
	for r.size > r.max {
		el := r.lru.Back()
		c := el.Value.(*cached)
		r.lru.Remove(el)
		delete(r.items, c.key)
		r.size -= r.charge(len(c.data), c.backing, -1)
	}
	r.m.Bytes.Set(float64(r.size))
}

// charge counts one entry of n bytes in (+1) or out (-1) of buf and returns the bytes that changes
// the cache by: n without a buffer; the buffer's size when its first slice comes in or its last goes.
func (r *Cache) charge(n int, buf *Backing, delta int) int64 {
	if buf == nil {
		return int64(n)
	}
	before := buf.cached
	buf.cached += delta
	if (before == 0) != (buf.cached == 0) {
		return buf.size
	}
	return 0
}

// ReadObject returns the verified bytes (or the error) of each of xs, extents of one object, reading
// those neither cached nor being read with as few GETs as the cache's largest read allows: one, for
// the extents of a flush object. A leader checks forwarded extents with it, which warms its cache.
func (r *Cache) ReadObject(ctx context.Context, xs []coord.Extent) ([][]byte, []error) {
	data, errs := make([][]byte, len(xs)), make([]error, len(xs))
	calls := make([]*readCall, len(xs))
	r.mu.Lock()
	var unread []coord.Extent
	for i, e := range xs {
		if el, ok := r.items[e]; ok {
			r.lru.MoveToFront(el)
			data[i] = el.Value.(*cached).data
		} else if c, ok := r.inflight[e]; ok {
			calls[i] = c
		} else if !slices.Contains(unread, e) {
			unread = append(unread, e)
		}
	}
	for _, run := range spanRuns(unread, r.maxSpan()) {
		r.startLocked(run)
	}
	for i, e := range xs {
		if data[i] == nil && calls[i] == nil {
			calls[i] = r.inflight[e]
		}
	}
	r.mu.Unlock()
	for i, c := range calls {
		if c == nil {
			continue
		}
		select {
		case <-c.Done():
			data[i], errs[i] = c.Result()
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return data, errs
}

// maxSpan is the longest range ReadObject reads with one GET: what the cache takes from one read, or,
// with the cache off, what coalesced reads span.
func (r *Cache) maxSpan() int64 {
	if r.max <= 0 {
		return coalesceMaxBytes
	}
	return max(r.MaxRun(), 1)
}

// spanRuns groups extents of one object into runs of one GET each, in position order, gaps included,
// each spanning at most maxSpan bytes (an extent longer than that is a run of its own).
func spanRuns(xs []coord.Extent, maxSpan int64) [][]coord.Extent {
	xs = slices.Clone(xs)
	slices.SortFunc(xs, func(a, b coord.Extent) int { return cmp.Compare(a.Pos, b.Pos) })
	var runs [][]coord.Extent
	for len(xs) > 0 {
		n, end := 1, xs[0].Pos+int64(xs[0].Len)
		for n < len(xs) && max(end, xs[n].Pos+int64(xs[n].Len))-xs[0].Pos <= maxSpan {
			end = max(end, xs[n].Pos+int64(xs[n].Len))
			n++
		}
		runs = append(runs, xs[:n:n])
		xs = xs[n:]
	}
	return runs
}
