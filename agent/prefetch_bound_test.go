package agent

import (
	"context"
	"fmt"
	"testing"
)

// Found by the chaos suite (e2e/chaos, the final drain of a long run): a fresh consumer reading from
// offset 0 made an agent start one object store read per stored extent within the fetch's byte limits,
// all at once — with franz-go's 1 MiB per partition and small flushes, thousands per fetch. The agent
// grew to 6 GB, opened 2,000 S3 connections, lost its etcd session over and over, and the drain never
// finished. A fetch starts at most prefetchMaxReads reads ahead.
func TestPrefetchIsBounded(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1", noMaintenance) // the extents stay uncompacted, each its own read
	cl := kgoClient(t, nil, a1)
	createLedTopic(t, cl, a1, "cold", 1, nil)
	c := dialRaw(t, a1)
	const batches = 3 * prefetchMaxReads
	for i := range batches {
		wantOK(t, "produce", c.produceOne("cold", 0, valueBatch(-1, -1, -1, nil, fmt.Sprint("v", i))).ErrorCode)
	}
	// a2's cache is cold, and its reads never finish: what prefetch starts stays in flight.
	a2 := startAgent(t, newAgentVia(t, tc, "a2", sharedEtcd[0], blockedReads{tc.store}))
	tp := topicTP(t, a2, "cold", 0)
	waitFor(t, "a2 to see every batch", func() bool { return a2.cache.HighWatermark(tp) == batches })

	a2.prefetch(fetchReq("cold", 0, 1, 50<<20, fetchPart{0, 0, 1 << 20}), "")
	started := a2.reader.Stats().Reads
	if started == 0 || started > prefetchMaxReads {
		t.Fatalf("one fetch of %d extents started %d reads, want 1 to %d", batches, started, prefetchMaxReads)
	}
}

// What one fetch reads ahead stays within a quarter of the cache, whatever the fetch's limits allow:
// more would evict the fetch's own reads before they are served.
func TestPrefetchStaysWithinTheCache(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1", noMaintenance)
	createLedTopic(t, kgoClient(t, nil, a1), a1, "cold", 1, nil)
	c := dialRaw(t, a1)
	const batches = 3 * prefetchMaxReads
	for i := range batches {
		wantOK(t, "produce", c.produceOne("cold", 0, valueBatch(-1, -1, -1, nil, fmt.Sprint("v", i))).ErrorCode)
	}
	const cache = 8 << 10 // a few dozen of the batches
	a2 := startAgent(t, newAgentVia(t, tc, "a2", sharedEtcd[0], blockedReads{tc.store}, func(c *Config) { c.CacheBytes = cache }))
	tp := topicTP(t, a2, "cold", 0)
	waitFor(t, "a2 to see every batch", func() bool { return a2.cache.HighWatermark(tp) == batches })

	a2.prefetch(fetchReq("cold", 0, 1, 50<<20, fetchPart{0, 0, 1 << 20}), "")
	started := a2.reader.Stats().ReadLen
	if started == 0 || started > cache/4 {
		t.Fatalf("a fetch with a %d-byte cache started reads of %d bytes, want 1 to %d", cache, started, cache/4)
	}
}

// blockedReads is an object store whose range reads wait for their context to end.
type blockedReads struct{ objectStore }

func (b blockedReads) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}
