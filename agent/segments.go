package agent

import (
	"container/list"
	"context"
	"sort"
	"sync"

	"github.com/streamhouse/streamhouse/agent/internal/extcache"
	"github.com/streamhouse/streamhouse/agent/internal/lifecycle"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// Reading partition segments (docs/INTERNALS.md, "Partition segments"). A segment's batches carry
// their offsets and leader epochs; its footer lists its blocks, each a run of whole batches with its
// first and last offset, position and CRC. A fetch reads the footer once (one ranged GET through the
// read cache; decoded footers are kept in footerCache) and then the blocks it needs, each an extent to
// the read cache, coalesced as any extents are. Batches are served as stored, from the first whose
// last offset reaches the fetch offset.

// footerCacheBlocks bounds the blocks of the decoded footers kept: 256k blocks, about 12 MiB, the
// footers of 16 segments of 1 GiB or thousands of small ones.
const footerCacheBlocks = 256 << 10

// footerCache keeps decoded segment footers, least recently used out first.
type footerCache struct {
	mu     sync.Mutex
	max    int
	blocks int
	lru    *list.List // of *footerItem, most recent at the front
	items  map[string]*list.Element
}

type footerItem struct {
	object string
	blocks []segstore.Block
}

func newFooterCache(maxBlocks int) *footerCache {
	return &footerCache{max: maxBlocks, lru: list.New(), items: map[string]*list.Element{}}
}

func (c *footerCache) get(object string) ([]segstore.Block, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[object]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(el)
	return el.Value.(*footerItem).blocks, true
}

func (c *footerCache) put(object string, blocks []segstore.Block) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[object]; ok {
		return
	}
	c.items[object] = c.lru.PushFront(&footerItem{object: object, blocks: blocks})
	c.blocks += len(blocks)
	for c.blocks > c.max && c.lru.Len() > 1 {
		el := c.lru.Back()
		it := el.Value.(*footerItem)
		c.lru.Remove(el)
		delete(c.items, it.object)
		c.blocks -= len(it.blocks)
	}
}

// segmentBlocks returns a segment's blocks, reading its footer if it is not cached.
func (a *Agent) segmentBlocks(ctx context.Context, s *coord.Segment) ([]segstore.Block, error) {
	if blocks, ok := a.footers.get(s.Object); ok {
		return blocks, nil
	}
	blocks, err := lifecycle.ReadFooter(ctx, a.reader, s)
	if err != nil {
		return nil, err
	}
	a.footers.put(s.Object, blocks)
	return blocks, nil
}

// blocksFrom returns the blocks from the one holding offset on.
func blocksFrom(blocks []segstore.Block, offset int64) []segstore.Block {
	i := sort.Search(len(blocks), func(i int) bool { return blocks[i].LastOffset >= offset })
	return blocks[i:]
}

// blockExtent is a block as an extent of the read cache.
func blockExtent(object string, b segstore.Block) coord.Extent {
	return coord.Extent{Object: object, Pos: b.Pos, Len: b.Len, CRC: b.CRC}
}

// fetchSegment appends to records the batches of segment entry e from offset, block by block, within
// limit bytes (or the first block whatever its size, when first is set and nothing is read yet). stop
// is set when the answer is complete: the limit is reached or a read cannot be waited for. first is
// what the caller's first becomes.
func (a *Agent) fetchSegment(ctx context.Context, e coord.IndexEntry, offset, limit int64, first bool, records []byte) (out []byte, stillFirst, stop bool, err error) {
	blocks, err := a.segmentBlocks(ctx, e.Segment)
	if err != nil {
		return records, first, true, err
	}
	for _, b := range blocksFrom(blocks, offset) {
		if int64(len(records))+int64(b.Len) > limit && (len(records) > 0 || !first) {
			return records, first, true, nil
		}
		data, short, err := a.fetchRead(ctx, blockExtent(e.Segment.Object, b), len(records) == 0)
		if short || err != nil {
			return records, first, true, err
		}
		batches, err := segstore.BatchesFrom(data, offset)
		if err != nil {
			a.metrics.corruptExtents.Inc()
			a.log.Error("stored block has broken batch framing; not served", "object", e.Segment.Object, "pos", b.Pos, "error", err)
			return records, first, true, err
		}
		if len(batches) > 0 {
			records, first = append(records, batches...), false
			a.metrics.fetchRecords.Add(float64(b.LastOffset + 1 - max(b.FirstOffset, offset)))
		}
	}
	return records, first, false, nil
}

// prefetchSegment adds to plan the blocks of segment entry e from offset, as prefetchPartition does
// for extents, when its footer is cached; otherwise it starts reading the footer, for the fetches after
// this one. It returns the bytes added and whether planning must stop.
func (a *Agent) prefetchSegment(plan *extcache.Plan, e coord.IndexEntry, offset, n, own, limit int64) (int64, bool) {
	blocks, ok := a.footers.get(e.Segment.Object)
	if !ok {
		seg := e.Segment
		a.wg.Go(func() { _, _ = a.segmentBlocks(a.runCtx, seg) })
		return n, true
	}
	for _, b := range blocksFrom(blocks, offset) {
		if plan.Extents() >= prefetchMaxExtents || (n > 0 && n+int64(b.Len) > limit) {
			return n, true
		}
		x := blockExtent(e.Segment.Object, b)
		if n == 0 || n+int64(b.Len) <= own {
			plan.Now = append(plan.Now, x)
		} else {
			plan.Ahead = append(plan.Ahead, x)
		}
		n += int64(b.Len)
	}
	return n, false
}
