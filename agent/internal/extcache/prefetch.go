package extcache

import (
	"cmp"
	"slices"

	"github.com/streamhouse/streamhouse/coord"
)

// Plan is what one fetch reads: the extents it answers with, and those it reads ahead. They
// are coalesced apart, so that the answer does not wait for the reads ahead of it.
type Plan struct {
	Now, Ahead []coord.Extent
}

// Extents is how many extents the plan reads.
func (p *Plan) Extents() int { return len(p.Now) + len(p.Ahead) }

// StartAll begins reading, in the background, the extents of plan that are neither cached nor being
// read, coalesced into at most maxReads GETs (the first ones coalesce makes, those the answer needs
// first; the rest are left for later), and returns how many GETs it started. It starts none past the
// reader's bound on reads in flight: the fetch reads what it needs itself, waiting for room.
func (r *Cache) StartAll(plan Plan, maxReads int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	runs := append(Coalesce(r.unread(plan.Now), r.MaxRun()), Coalesce(r.unread(plan.Ahead), r.MaxRun())...)
	if len(runs) > maxReads {
		runs = runs[:maxReads]
	}
	for i, run := range runs {
		if !r.roomLocked(spanBytes(run)) {
			r.m.Deferred.Add(float64(len(runs) - i))
			return i
		}
		r.startLocked(run)
	}
	return len(runs)
}

// unread returns the extents of xs that are neither cached nor being read; the caller holds r.mu.
func (r *Cache) unread(xs []coord.Extent) []coord.Extent {
	var out []coord.Extent
	for _, e := range xs {
		if _, ok := r.items[e]; ok {
			continue
		}
		if _, ok := r.inflight[e]; ok {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Coalescing: extents of one object that lie close together are read by one GET. One flush writes
// every partition's batches into one object, back to back, so a consumer reading 8 partitions from the
// same offsets needs one GET per object, not 8. A GET reads at most the cache's eighth (so that its
// body, which the cache keeps while any extent of it is cached, is charged exactly) and at most
// coalesceMaxBytes: S3 serves one connection at some 100 MB/s, so a longer range would trade the
// parallelism of several GETs for fewer requests. Gaps of up to coalesceMaxGap between extents (of
// partitions nobody asked for) are read and dropped.
const (
	coalesceMaxBytes = 8 << 20
	coalesceMaxGap   = 64 << 10
)

// MaxRun is the longest byte range one coalesced GET reads.
func (r *Cache) MaxRun() int64 { return min(coalesceMaxBytes, r.max/8) }

// Coalesce groups extents into runs, one GET each: extents of one object, in position order, each
// starting at most coalesceMaxGap after the end of the one before, a run spanning at most maxSpan
// bytes (an extent longer than that is a run of its own). Runs come in the order their objects first
// appear in xs, so that the reads a fetch needs first start first. xs must not repeat an extent.
func Coalesce(xs []coord.Extent, maxSpan int64) [][]coord.Extent {
	byObject := make(map[string][]coord.Extent)
	var order []string
	for _, x := range xs {
		if _, seen := byObject[x.Object]; !seen {
			order = append(order, x.Object)
		}
		byObject[x.Object] = append(byObject[x.Object], x)
	}
	var runs [][]coord.Extent
	for _, o := range order {
		es := byObject[o]
		slices.SortFunc(es, func(a, b coord.Extent) int { return cmp.Compare(a.Pos, b.Pos) })
		run, from, to := []coord.Extent{es[0]}, es[0].Pos, es[0].Pos+int64(es[0].Len)
		for _, e := range es[1:] {
			end := max(to, e.Pos+int64(e.Len))
			if e.Pos-to > coalesceMaxGap || end-from > maxSpan {
				runs = append(runs, run)
				run, from, end = nil, e.Pos, e.Pos+int64(e.Len)
			}
			run, to = append(run, e), end
		}
		runs = append(runs, run)
	}
	return runs
}
