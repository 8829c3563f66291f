package agent

import (
	"cmp"
	"container/list"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// reader reads stored extents through an LRU cache. Concurrent reads of one extent share one GET.
type reader struct {
	a   *Agent
	max int64

	mu       sync.Mutex
	size     int64
	lru      *list.List // of *cached, most recent at the front
	items    map[coord.Extent]*list.Element
	inflight map[coord.Extent]*readCall
}

type cached struct {
	key     coord.Extent
	data    []byte
	backing *backing // what data is a slice of and holds in memory; nil: data alone
}

// backing is a buffer whose slices the cache keeps as they are: a produce request's frame, whose
// partition batches would otherwise be copied (a copy of each would double the produce path's
// allocations), or the body of one GET that read several adjacent extents. The cache charges its size
// once, while any slice of it is cached, since one cached slice keeps the whole buffer in memory.
type backing struct {
	size   int64
	cached int // slices of it in the cache; under reader.mu
}

type readCall struct {
	done chan struct{}
	data []byte
	err  error
}

func newReader(a *Agent, maxBytes int64) *reader {
	return &reader{a: a, max: maxBytes, lru: list.New(),
		items: make(map[coord.Extent]*list.Element), inflight: make(map[coord.Extent]*readCall)}
}

// extent returns the verified bytes of e. The slice is shared and must not be modified.
func (r *reader) extent(ctx context.Context, e coord.Extent) ([]byte, error) {
	r.mu.Lock()
	if el, ok := r.items[e]; ok {
		r.lru.MoveToFront(el)
		r.mu.Unlock()
		r.a.metrics.cacheHits.Inc()
		return el.Value.(*cached).data, nil
	}
	call, ok := r.inflight[e]
	if !ok {
		call = r.startLocked([]coord.Extent{e})[0]
	}
	r.mu.Unlock()
	r.a.metrics.cacheMisses.Inc()
	select {
	case <-call.done:
		return call.data, call.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// startLocked registers a read of every extent of run, which coalesce made (one object, close
// together), and starts their one GET; the caller holds r.mu and has checked that none of them is
// cached or in flight.
func (r *reader) startLocked(run []coord.Extent) []*readCall {
	calls := make([]*readCall, len(run))
	for i, e := range run {
		calls[i] = &readCall{done: make(chan struct{})}
		r.inflight[e] = calls[i]
	}
	r.a.goRun(func() { r.load(run, calls) })
	return calls
}

// extentReadTimeout bounds one GET of extents.
const extentReadTimeout = 30 * time.Second

// load GETs the bytes of run, from its first extent to its last, and verifies and caches each extent.
// It runs detached from any one fetch, so that a fetch giving up does not fail the others waiting on
// the same read.
func (r *reader) load(run []coord.Extent, calls []*readCall) {
	ctx, cancel := context.WithTimeout(r.a.runCtx, extentReadTimeout)
	defer cancel()
	from, to := span(run)
	body, err := r.a.store.GetRange(ctx, run[0].Object, from, to-from)
	if err == nil && int64(len(body)) != to-from {
		err = fmt.Errorf("object %s: read %d bytes at %d, want %d", run[0].Object, len(body), from, to-from)
	}
	var buf *backing
	if len(run) > 1 {
		buf = &backing{size: int64(len(body))}
	}
	for i, e := range run {
		c := calls[i]
		if c.err = err; err != nil {
			continue
		}
		if e.Len < 0 { // an index entry etcd holds, not one an agent wrote: never sliced
			c.err = fmt.Errorf("%w: object %s: extent at %d has length %d", segstore.ErrCorrupt, e.Object, e.Pos, e.Len)
			continue
		}
		c.data = body[e.Pos-from : e.Pos-from+int64(e.Len) : e.Pos-from+int64(e.Len)]
		if c.err = segstore.VerifyExtent(c.data, e.CRC); c.err != nil {
			c.data = nil
			r.a.metrics.corruptExtents.Inc()
			r.a.log.Error("stored extent failed its CRC; not served", "object", e.Object, "pos", e.Pos, "len", e.Len)
		}
	}
	r.mu.Lock()
	for i, e := range run {
		delete(r.inflight, e)
		if calls[i].err == nil {
			r.add(e, calls[i].data, buf)
		}
	}
	r.mu.Unlock()
	for _, c := range calls {
		close(c.done)
	}
}

// span returns the byte range [from, to) of an object that covers every extent of run.
func span(run []coord.Extent) (from, to int64) {
	from, to = run[0].Pos, run[0].Pos+int64(run[0].Len)
	for _, e := range run[1:] {
		from, to = min(from, e.Pos), max(to, e.Pos+int64(e.Len))
	}
	return from, to
}

// keep caches data, which this agent has just written as extent e: a slice of frame, or its own
// bytes when frame is nil. data must never be modified.
func (r *reader) keep(e coord.Extent, data []byte, frame *backing) {
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
func (r *reader) add(e coord.Extent, data []byte, buf *backing) {
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
	r.a.metrics.cacheBytes.Set(float64(r.size))
}

// charge counts one entry of n bytes in (+1) or out (-1) of buf and returns the bytes that changes
// the cache by: n without a buffer; the buffer's size when its first slice comes in or its last goes.
func (r *reader) charge(n int, buf *backing, delta int) int64 {
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

// readAll returns the verified bytes (or the error) of each of xs, extents of one object, reading
// those neither cached nor being read with as few GETs as the cache's largest read allows: one, for
// the extents of a flush object. A leader checks forwarded extents with it, which warms its cache.
func (r *reader) readAll(ctx context.Context, xs []coord.Extent) ([][]byte, []error) {
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
		case <-c.done:
			data[i], errs[i] = c.data, c.err
		case <-ctx.Done():
			errs[i] = ctx.Err()
		}
	}
	return data, errs
}

// maxSpan is the longest range readAll reads with one GET: what the cache takes from one read, or,
// with the cache off, what coalesced reads span.
func (r *reader) maxSpan() int64 {
	if r.max <= 0 {
		return coalesceMaxBytes
	}
	return max(r.maxRun(), 1)
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
