package agent

import (
	"math"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// prefetch starts, at once and concurrently, the object store reads that a fetch is about to need:
// every extent not in the cache, of every partition asked for, within the partition's and the
// request's byte limits. fillFetch then assembles the answer in order as before, each extent waiting
// only for its own read. Without it a fetch of a consumer catching up reads its extents one after
// another: 8 partitions of a few extents each cost the sum of their GET latencies, not the longest.
//
// It is only a hint: what it reads goes to the cache (concurrent reads of one extent share one GET),
// and an extent it did not start is read as before. It does nothing when the cache is off (reads
// could not be kept for the answer) or for a client another zone's agent will serve. It starts at
// most prefetchMaxReads reads: a consumer starting from an old offset asks, within its byte limits,
// for thousands of small extents, and one goroutine, GET and connection for each at once is how an
// agent runs out of memory.
//
// It also reads ahead: readAhead times the fetch's limits, so that the reads of the consumer's next
// fetch, which it sends only once this one is answered, are under way while this answer travels and
// is decoded. Without it a consumer catching up alternates between waiting for S3 and for itself.
func (a *Agent) prefetch(req *kmsg.FetchRequest, cz string) {
	if a.reader.max <= 0 || (req.Version >= 11 && cz != "" && a.cfg.AZ != "" && cz != a.cfg.AZ) {
		return
	}
	budget := int64(math.MaxInt32)
	if req.Version >= 3 && req.MaxBytes > 0 {
		budget = int64(req.MaxBytes) * readAhead
	}
	reads := prefetchMaxReads
	for i := range req.Topics {
		t, known := a.fetchTopic(req, &req.Topics[i])
		if !known {
			continue
		}
		for _, rp := range req.Topics[i].Partitions {
			if budget <= 0 || reads <= 0 {
				return
			}
			if rp.Partition < 0 || rp.Partition >= t.Partitions {
				continue
			}
			limit := min(int64(max(rp.PartitionMaxBytes, 0))*readAhead, budget)
			budget -= a.prefetchPartition(coord.TP{Topic: t.ID, Partition: rp.Partition}, rp.FetchOffset, limit, &reads)
		}
	}
}

// prefetchMaxReads bounds the reads one fetch starts ahead.
const prefetchMaxReads = 64

// readAhead is how many fetches' worth of extents a fetch prefetches: its own and the next one's.
const readAhead = 2

// prefetchPartition starts the reads of tp's extents from offset, up to limit bytes (at least one
// extent) and *reads reads, and returns how many bytes it covered.
func (a *Agent) prefetchPartition(tp coord.TP, offset, limit int64, reads *int) int64 {
	if offset >= a.cache.HighWatermark(tp) || offset < a.cache.LogStart(tp) {
		return 0
	}
	var n int64
	for _, e := range a.cache.Entries(tp, offset, max(limit, 1)) {
		for _, x := range e.Extents {
			if (n > 0 && n+int64(x.Len) > limit) || *reads <= 0 {
				return n
			}
			if a.reader.start(x) {
				*reads--
			}
			n += int64(x.Len)
		}
	}
	return n
}

// start begins reading e in the background unless it is cached or being read already; it reports
// whether it started a read.
func (r *reader) start(e coord.Extent) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.items[e]; ok {
		return false
	}
	if _, ok := r.inflight[e]; ok {
		return false
	}
	call := &readCall{done: make(chan struct{})}
	r.inflight[e] = call
	r.a.goRun(func() { r.load(e, call) })
	return true
}
