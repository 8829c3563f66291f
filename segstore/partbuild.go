package segstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

// PlanPartSegment lays out the partition segment of spans (in offset order, at least one) before
// their bytes are at hand: blocks filled with whole spans up to blockTarget bytes (0:
// DefaultPartBlockTarget; a span larger than that is a block of its own), where each block goes, and
// the object's size. The plan's block CRCs and footer CRC are zero: BuildPartSegment fills them in.
func PlanPartSegment(topicID [16]byte, partition int32, spans []Span, blockTarget int) (*PartSegment, error) {
	if len(spans) == 0 {
		return nil, errors.New("segstore: a partition segment needs at least one span")
	}
	target := blockLimit(blockTarget)
	var blocks []Block
	pos, prevLast := int64(PartHeaderLen), int64(-1)
	for i, s := range spans {
		if s.Len < batchHeaderLen || s.FirstOffset < 0 || s.FirstOffset <= prevLast || s.LastOffset < s.FirstOffset {
			return nil, fmt.Errorf("segstore: span %d (%d bytes, offsets [%d, %d]) does not follow offset %d", i, s.Len, s.FirstOffset, s.LastOffset, prevLast)
		}
		if n := len(blocks); n > 0 && int64(blocks[n-1].Len)+int64(s.Len) <= target {
			b := &blocks[n-1]
			b.Len += s.Len
			b.LastOffset = s.LastOffset
			b.MaxTimestamp = max(b.MaxTimestamp, s.MaxTimestamp)
		} else {
			blocks = append(blocks, Block{FirstOffset: s.FirstOffset, LastOffset: s.LastOffset, Pos: pos, Len: s.Len, MaxTimestamp: s.MaxTimestamp})
		}
		pos += int64(s.Len)
		prevLast = s.LastOffset
	}
	if len(blocks) > maxPartBlocks {
		return nil, fmt.Errorf("segstore: %d blocks exceed the partition segment format's limit of %d", len(blocks), maxPartBlocks)
	}
	return &PartSegment{
		PartHeader: PartHeader{TopicID: topicID, Partition: partition, BaseOffset: spans[0].FirstOffset, LastOffset: prevLast},
		Blocks:     blocks,
		Footer:     PartFooter{Pos: pos, Len: int32(len(blocks)*partRowLen + partFooterCRCLen)},
		Size:       partSize(pos, len(blocks)),
	}, nil
}

// blockLimit is the block size that target asks for (0: DefaultPartBlockTarget).
func blockLimit(target int) int64 {
	if target <= 0 {
		return DefaultPartBlockTarget
	}
	return int64(min(target, math.MaxInt32))
}

// BuildPartSegment makes the object that plan (from PlanPartSegment) describes, from data: the
// spans' batches in order, each slice holding whole batches (one slice per span, typically). It
// returns the object as parts for Writer.Put (its header, data's slices as they are, its footer and
// trailer: no batch is copied) and the segment with every CRC filled in. data must be exactly the
// planned batches: each block's batches fill it, starting and ending at its offsets; otherwise the
// error wraps ErrCorrupt. Each byte of data is read once, for its block's CRC.
func BuildPartSegment(plan *PartSegment, data [][]byte) ([][]byte, *PartSegment, error) {
	if err := checkPlan(plan); err != nil {
		return nil, nil, err
	}
	seg := *plan
	seg.Blocks = slices.Clone(plan.Blocks)
	if err := fillBlockCRCs(seg.Blocks, data); err != nil {
		return nil, nil, err
	}
	head := appendPartHeader(make([]byte, 0, PartHeaderLen), &seg.PartHeader)
	tail, footer := appendPartTail(nil, seg.Blocks, seg.Footer.Pos)
	seg.Footer = footer
	parts := make([][]byte, 0, len(data)+2)
	parts = append(append(append(parts, head), data...), tail)
	return parts, &seg, nil
}

// checkPlan checks that plan is consistent, as PlanPartSegment makes it.
func checkPlan(plan *PartSegment) error {
	end, err := checkBlocks(plan.Blocks, -1)
	if err == nil && (end != plan.Footer.Pos || plan.Size != partSize(end, len(plan.Blocks)) ||
		plan.BaseOffset != plan.Blocks[0].FirstOffset || plan.LastOffset != plan.Blocks[len(plan.Blocks)-1].LastOffset) {
		err = fmt.Errorf("its header, footer position or size does not match its blocks")
	}
	if err != nil {
		return fmt.Errorf("segstore: not a partition segment plan: %v", err)
	}
	return nil
}

// fillBlockCRCs walks the batches of data across its slices, checks that they fill blocks exactly
// (offsets included) and sets each block's CRC.
func fillBlockCRCs(blocks []Block, data [][]byte) error {
	i, used, crc, prevLast := 0, int64(0), uint32(0), int64(-1)
	for _, d := range data {
		var err error
		prevLast, err = walkBatches(d, prevLast, func(pos int, s Span) error {
			if err := fitBatch(blocks, i, used, s); err != nil {
				return err
			}
			crc = crc32.Update(crc, castagnoli, d[pos:pos+int(s.Len)])
			if used += int64(s.Len); used == int64(blocks[i].Len) {
				blocks[i].CRC = crc
				i, used, crc = i+1, 0, 0
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if i != len(blocks) {
		return fmt.Errorf("%w: the batches end in block %d of %d", ErrCorrupt, i, len(blocks))
	}
	return nil
}

// fitBatch checks that batch s, coming after used bytes of block i, belongs there.
func fitBatch(blocks []Block, i int, used int64, s Span) error {
	if i == len(blocks) {
		return fmt.Errorf("%w: batch at offset %d is past the planned blocks", ErrCorrupt, s.FirstOffset)
	}
	b := &blocks[i]
	switch end := used + int64(s.Len); {
	case used == 0 && s.FirstOffset != b.FirstOffset:
		return fmt.Errorf("%w: block %d starts with offset %d, planned %d", ErrCorrupt, i, s.FirstOffset, b.FirstOffset)
	case end > int64(b.Len):
		return fmt.Errorf("%w: batch at offset %d runs past block %d's %d bytes", ErrCorrupt, s.FirstOffset, i, b.Len)
	case end == int64(b.Len) && s.LastOffset != b.LastOffset:
		return fmt.Errorf("%w: block %d ends with offset %d, planned %d", ErrCorrupt, i, s.LastOffset, b.LastOffset)
	}
	return nil
}
