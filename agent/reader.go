package agent

import (
	"container/list"
	"context"
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
	key   coord.Extent
	data  []byte
	frame *requestFrame // what data is a slice of and holds in memory; nil: data alone
}

// requestFrame is a produce request's frame, whose partition batches the cache keeps as they are (a
// copy of each would double the produce path's allocations). The cache charges a frame's size once,
// while any of its batches is cached, since one cached batch keeps the whole frame in memory.
type requestFrame struct {
	size   int64
	cached int // batches of it in the cache; under reader.mu
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
		call = &readCall{done: make(chan struct{})}
		r.inflight[e] = call
		r.a.goRun(func() { r.load(e, call) })
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

// extentReadTimeout bounds one GET of an extent.
const extentReadTimeout = 30 * time.Second

// load GETs and verifies one extent. It runs detached from any one fetch, so that a fetch giving up
// does not fail the others waiting on the same read.
func (r *reader) load(e coord.Extent, call *readCall) {
	ctx, cancel := context.WithTimeout(r.a.runCtx, extentReadTimeout)
	defer cancel()
	data, err := r.a.store.GetRange(ctx, e.Object, e.Pos, int64(e.Len))
	if err == nil {
		if err = segstore.VerifyExtent(data, e.CRC); err != nil {
			r.a.metrics.corruptExtents.Inc()
			r.a.log.Error("stored extent failed its CRC; not served", "object", e.Object, "pos", e.Pos, "len", e.Len)
		}
	}
	call.data, call.err = data, err
	r.mu.Lock()
	delete(r.inflight, e)
	if err == nil {
		r.add(e, data, nil)
	}
	r.mu.Unlock()
	close(call.done)
}

// keep caches data, which this agent has just written as extent e: a slice of frame, or its own
// bytes when frame is nil. data must never be modified.
func (r *reader) keep(e coord.Extent, data []byte, frame *requestFrame) {
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

// add caches data as e, charging its frame's size if it has one (once per frame), then evicts the
// least recently used entries until the cache is within its budget.
func (r *reader) add(e coord.Extent, data []byte, frame *requestFrame) {
	if int64(len(data)) > r.max {
		return
	}
	r.items[e] = r.lru.PushFront(&cached{key: e, data: data, frame: frame})
	r.size += r.charge(len(data), frame, +1)
	for r.size > r.max {
		el := r.lru.Back()
		c := el.Value.(*cached)
		r.lru.Remove(el)
		delete(r.items, c.key)
		r.size -= r.charge(len(c.data), c.frame, -1)
	}
	r.a.metrics.cacheBytes.Set(float64(r.size))
}

// charge counts one entry of n bytes in (+1) or out (-1) of frame and returns the bytes that changes
// the cache by: n without a frame; the frame's size when its first batch comes in or its last goes.
func (r *reader) charge(n int, frame *requestFrame, delta int) int64 {
	if frame == nil {
		return int64(n)
	}
	before := frame.cached
	frame.cached += delta
	if (before == 0) != (frame.cached == 0) {
		return frame.size
	}
	return 0
}
