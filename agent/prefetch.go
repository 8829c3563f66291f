package agent

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/extcache"
	"github.com/streamhouse/streamhouse/coord"
)

// prefetch starts, at once and concurrently, the object store reads that a fetch is about to need:
// every extent not in the cache, of every partition asked for, within the partition's and the
// request's byte limits. fillFetch then assembles the answer in order as before, each extent waiting
// only for its own read. Without it a fetch of a consumer catching up reads its extents one after
// another: 8 partitions of a few extents each cost the sum of their GET latencies, not the longest.
// Extents that lie together in one object are read by one GET (coalesce, below).
//
// It is only a hint: what it reads goes to the cache (concurrent reads of one extent share one GET),
// and an extent it did not start is read as before. It does nothing when the cache is off (reads
// could not be kept for the answer) or for a client another zone's agent will serve. It starts at
// most prefetchMaxReads GETs of prefetchMaxExtents extents: a consumer starting from an old offset
// asks, within its byte limits, for thousands of small extents, and one goroutine, GET and connection
// for each at once is how an agent runs out of memory.
//
// It also reads ahead: readAhead times the fetch's limits, so that the reads of the consumer's next
// fetches, which it sends only once this one is answered, are under way while this answer travels and
// is decoded. Without it a consumer catching up alternates between waiting for S3 and for itself.
// What one fetch reads is bounded by a share of the cache (1/prefetchCacheShare), or it would evict
// its own reads before they are served.
func (a *Agent) prefetch(req *kmsg.FetchRequest, cz string) {
	if a.reader.Max() <= 0 || (req.Version >= 11 && cz != "" && a.cfg.AZ != "" && cz != a.cfg.AZ) {
		return
	}
	budget := a.reader.Max() / prefetchCacheShare
	if req.Version >= 3 && req.MaxBytes > 0 {
		budget = min(budget, int64(req.MaxBytes)*readAhead)
	}
	var plan extcache.Plan
	for i := range req.Topics {
		t, known := a.fetchTopic(req, &req.Topics[i])
		if !known {
			continue
		}
		for _, rp := range req.Topics[i].Partitions {
			if budget <= 0 || plan.Extents() >= prefetchMaxExtents {
				break
			}
			if rp.Partition < 0 || rp.Partition >= t.Partitions {
				continue
			}
			own := int64(max(rp.PartitionMaxBytes, 0))
			limit := min(own*readAhead, budget)
			budget -= a.prefetchPartition(&plan, coord.TP{Topic: t.ID, Partition: rp.Partition}, rp.FetchOffset, own, limit, budget, a.reader.MaxRun())
		}
	}
	a.reader.StartAll(plan, prefetchMaxReads)
}

// prefetchMaxReads bounds the GETs one fetch starts ahead, and prefetchMaxExtents the extents they
// read.
const (
	prefetchMaxReads   = 64
	prefetchMaxExtents = 1024
)

// readAhead is how many fetches' worth of extents a fetch prefetches: its own and the next seven.
// Measured with make bench's cold read (192 MiB of 1 KiB records over 8 partitions, one agent on the
// embedded S3 endpoint): 2 read 750 MiB/s, 4 read 1,030, 8 read 1,250 (from the cache: 1,800).
// The consumer needs the next fetch's bytes within one answer's round trip, and a GET takes several.
const readAhead = 8

// prefetchCacheShare: one fetch reads ahead at most this fraction of the cache.
const prefetchCacheShare = 4

// prefetchPartition adds to plan tp's extents from offset: up to own bytes (at least one extent) to
// plan.Now, then up to limit bytes to plan.Ahead, and prefetchMaxExtents in all; it returns how many
// bytes it added. Past the limit, and up to budget bytes, it goes on over the partition's extents that
// follow the last one back to back in its object, while one GET of maxRun bytes would read them with
// it: a consumer reading on needs them next, and one flush keeps a partition's batches together, so a
// consumer catching up reads each object with a GET per partition rather than one per fetch.
func (a *Agent) prefetchPartition(plan *extcache.Plan, tp coord.TP, offset, own, limit, budget, maxRun int64) int64 {
	if offset >= a.cache.HighWatermark(tp) || offset < a.cache.LogStart(tp) {
		return 0
	}
	var n, runFrom int64
	var last coord.Extent
	for _, e := range a.cache.Entries(tp, offset, max(limit, 1)+maxRun) {
		if e.Segment != nil {
			var stop bool
			if n, stop = a.prefetchSegment(plan, e, offset, n, own, limit); stop {
				return n
			}
			last = coord.Extent{}
			continue
		}
		for _, x := range e.Extents {
			if plan.Extents() >= prefetchMaxExtents {
				return n
			}
			contiguous := n > 0 && x.Object == last.Object && x.Pos == last.Pos+int64(last.Len)
			if !contiguous {
				runFrom = x.Pos
			}
			if n > 0 && n+int64(x.Len) > limit && (!contiguous || x.Pos+int64(x.Len)-runFrom > maxRun || n+int64(x.Len) > budget) {
				return n
			}
			if n == 0 || n+int64(x.Len) <= own {
				plan.Now = append(plan.Now, x)
			} else {
				plan.Ahead = append(plan.Ahead, x)
			}
			n, last = n+int64(x.Len), x
		}
	}
	return n
}
