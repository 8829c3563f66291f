package segstore

import (
	"fmt"
	"slices"
)

// FinishPartSegment makes the header and the footer-and-trailer of the segment that plan (from
// PlanPartSegment) describes, given each block's CRC-32C, for a writer that keeps the batches
// elsewhere while it writes them (a compacted topic's cleaner spools a rewritten segment to a file):
// the object is then head, the planned batches, tail, and seg is the segment with its CRCs filled in.
// The batches themselves are not checked here; the caller computed crcs over exactly the planned blocks.
func FinishPartSegment(plan *PartSegment, crcs []uint32) (head, tail []byte, seg *PartSegment, err error) {
	if err := checkPlan(plan); err != nil {
		return nil, nil, nil, err
	}
	if len(crcs) != len(plan.Blocks) {
		return nil, nil, nil, fmt.Errorf("segstore: %d block CRCs for %d blocks", len(crcs), len(plan.Blocks))
	}
	s := *plan
	s.Blocks = slices.Clone(plan.Blocks)
	for i := range s.Blocks {
		s.Blocks[i].CRC = crcs[i]
	}
	head = appendPartHeader(make([]byte, 0, PartHeaderLen), &s.PartHeader)
	tail, s.Footer = appendPartTail(nil, s.Blocks, s.Footer.Pos)
	return head, tail, &s, nil
}
