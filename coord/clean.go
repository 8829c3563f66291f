package coord

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// ReplaceSegments puts the cleaned entries of existing segments of tp (the same base offsets, so the
// same keys): a compacted topic's cleaner commits a clean with it. The entries go in as few Txns as the
// client's limits allow, each fenced on the leader epoch, in order; any prefix of them applied is a
// correct partition (docs/INTERNALS.md, "Commit, crash and leader change"). It returns the revision of
// the last.
func (s *Session) ReplaceSegments(ctx context.Context, tp TP, epoch int64, segs []IndexEntry) (int64, error) {
	ops := make([]clientv3.Op, 0, len(segs))
	for _, seg := range segs {
		if seg.Segment == nil || seg.LastOffset < seg.BaseOffset || seg.BaseOffset < 0 {
			return 0, fmt.Errorf("coord: replace segments of %s: not a segment: %+v", tp, seg)
		}
		val, err := json.Marshal(seg)
		if err != nil {
			return 0, fmt.Errorf("coord: replace segments of %s: %w", tp, err)
		}
		ops = append(ops, clientv3.OpPut(s.c.keys.segment(tp, seg.BaseOffset), string(val)))
	}
	var rev int64
	for len(ops) > 0 {
		n := s.c.opsThatFit(ops, 1)
		r, err := s.fencedWrite(ctx, tp, epoch, "replace segments", ops[:n])
		if err != nil {
			return 0, err
		}
		rev, ops = r, ops[n:]
	}
	return rev, nil
}

// describeCleaner fills a partition's cleaner progress in from its segments.
func describeCleaner(segs []IndexEntry, ps *PartitionStatus) {
	dirty := false
	for _, s := range segs {
		ps.Tombstones += s.Segment.Tombstones
		if dirty || s.Segment.CleanTo == 0 {
			dirty = true
			continue
		}
		ps.CleanTo = s.Segment.CleanTo
		dirty = s.Segment.CleanTo <= s.LastOffset
	}
}
