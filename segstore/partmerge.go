package segstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
)

// DefaultMergeChunk bounds a merge's ranged GETs of its sources, and so the bytes it holds at once.
const DefaultMergeChunk = 8 << 20

// Range is the bytes [Pos, Pos+Len) of an object.
type Range struct {
	Pos, Len int64
}

// PartMerge is the plan of a partition segment that concatenates adjacent segments of one partition,
// their batches as they are: the object is Head, then each source's Region (its batches) in order,
// then Tail. Its header and footer are known from the sources' footers alone, so the object can be
// streamed (NewReader, Writer.PutReader) without reading a source twice.
type PartMerge struct {
	Segment PartSegment // the merged segment: the sources' blocks, shifted, small ones joined
	Head    []byte      // header
	Tail    []byte      // footer and trailer
	Regions []Range     // Regions[i]: the bytes of source i to copy, its batches

	sources [][]Block
}

// PlanPartMerge plans the merge of sources, the blocks of adjacent partition segments of topicID's
// partition (from their footers: DecodePartFooter), in offset order; offsets may skip between them,
// never overlap. An error wraps ErrCorrupt when a source's blocks are not a footer's.
//
// Adjacent blocks that fit in blockTarget bytes together (0: DefaultPartBlockTarget; 1 keeps every
// block as it is) become one block of the merge, its CRC combined from theirs (CombineCRC): the bytes
// are the same, only the footer changes, so nothing is read for it. Without this, the small blocks of a
// slowly written partition's first segments would reach its largest ones, and their footers would
// grow with its history (40 bytes a block).
func PlanPartMerge(topicID [16]byte, partition int32, sources [][]Block, blockTarget int) (*PartMerge, error) {
	if len(sources) == 0 {
		return nil, errors.New("segstore: a merge needs at least one source segment")
	}
	n := 0
	for _, src := range sources {
		n += len(src)
	}
	if n > maxPartBlocks {
		return nil, fmt.Errorf("segstore: %d blocks exceed the partition segment format's limit of %d", n, maxPartBlocks)
	}
	m := &PartMerge{Regions: make([]Range, len(sources)), sources: make([][]Block, len(sources))}
	blocks := make([]Block, 0, n)
	pos, prevLast := int64(PartHeaderLen), int64(-1)
	for i, src := range sources {
		end, err := checkBlocks(src, prevLast)
		if err != nil {
			return nil, fmt.Errorf("segstore: merge source %d: %w", i, err)
		}
		for _, b := range src {
			b.Pos += pos - PartHeaderLen
			blocks = append(blocks, b)
		}
		m.Regions[i] = Range{Pos: PartHeaderLen, Len: end - PartHeaderLen}
		m.sources[i] = slices.Clone(src)
		pos += end - PartHeaderLen
		prevLast = src[len(src)-1].LastOffset
	}
	blocks = joinBlocks(blocks, blockTarget)
	h := PartHeader{TopicID: topicID, Partition: partition, BaseOffset: blocks[0].FirstOffset, LastOffset: prevLast}
	m.Head = appendPartHeader(make([]byte, 0, PartHeaderLen), &h)
	var footer PartFooter
	m.Tail, footer = appendPartTail(nil, blocks, pos)
	m.Segment = PartSegment{PartHeader: h, Blocks: blocks, Footer: footer, Size: partSize(pos, len(blocks))}
	return m, nil
}

// joinBlocks joins adjacent blocks (back to back, checked) while they fit in target bytes, in place.
func joinBlocks(blocks []Block, target int) []Block {
	limit := blockLimit(target)
	out := blocks[:0]
	for _, b := range blocks {
		if n := len(out); n > 0 && int64(out[n-1].Len)+int64(b.Len) <= limit {
			j := &out[n-1]
			j.CRC = CombineCRC(j.CRC, b.CRC, int64(b.Len))
			j.Len += b.Len
			j.LastOffset = b.LastOffset
			j.MaxTimestamp = max(j.MaxTimestamp, b.MaxTimestamp)
			continue
		}
		out = append(out, b)
	}
	return out
}

// NewReader returns the merged object (m.Segment.Size bytes) as a reader for Writer.PutReader. It
// reads source i from r under keys[i] with ranged GETs of whole blocks, up to chunk bytes each (0:
// DefaultMergeChunk; a larger block is read alone), and checks every block (VerifyBlock) before
// passing it on, so a corrupt source fails the merge (the error wraps ErrCorrupt) instead of being
// copied. It holds one GET's bytes at a time; its GETs use ctx. It is not safe for concurrent use.
func (m *PartMerge) NewReader(ctx context.Context, r Reader, keys []string, chunk int64) (io.Reader, error) {
	if len(keys) != len(m.sources) {
		return nil, fmt.Errorf("segstore: %d keys for a merge of %d sources", len(keys), len(m.sources))
	}
	if chunk <= 0 {
		chunk = DefaultMergeChunk
	}
	return &mergeReader{ctx: ctx, r: r, m: m, keys: keys, chunk: chunk, buf: m.Head}, nil
}

// mergeReader reads a PartMerge's object: Head (buf at the start), the sources' blocks one GET at a
// time, then Tail.
type mergeReader struct {
	ctx   context.Context
	r     Reader
	m     *PartMerge
	keys  []string
	chunk int64

	src, blk int    // the next block to read
	tail     bool   // Tail has been handed to buf
	buf      []byte // read, not yet returned
	err      error  // sticky; io.EOF at the end
}

func (mr *mergeReader) Read(p []byte) (int, error) {
	for len(mr.buf) == 0 {
		if mr.err != nil {
			return 0, mr.err
		}
		mr.buf, mr.err = mr.next()
	}
	n := copy(p, mr.buf)
	mr.buf = mr.buf[n:]
	return n, nil
}

// next returns the next bytes of the object: a GET of the next source's blocks, or Tail, or io.EOF.
func (mr *mergeReader) next() ([]byte, error) {
	if mr.src == len(mr.m.sources) {
		if mr.tail {
			return nil, io.EOF
		}
		mr.tail = true
		return mr.m.Tail, nil
	}
	blocks := mr.m.sources[mr.src][mr.blk:]
	n, size := 1, int64(blocks[0].Len)
	for n < len(blocks) && size+int64(blocks[n].Len) <= mr.chunk {
		size += int64(blocks[n].Len)
		n++
	}
	key := mr.keys[mr.src]
	data, err := mr.r.GetRange(mr.ctx, key, blocks[0].Pos, size)
	if err != nil {
		return nil, fmt.Errorf("segstore: merge source %q: %w", key, err)
	}
	if int64(len(data)) != size {
		return nil, fmt.Errorf("%w: merge source %q: read %d bytes at %d, want %d", ErrCorrupt, key, len(data), blocks[0].Pos, size)
	}
	for _, b := range blocks[:n] {
		off := b.Pos - blocks[0].Pos
		if err := VerifyBlock(data[off:off+int64(b.Len)], b); err != nil {
			return nil, fmt.Errorf("segstore: merge source %q: %w", key, err)
		}
	}
	if mr.blk += n; mr.blk == len(mr.m.sources[mr.src]) {
		mr.src, mr.blk = mr.src+1, 0
	}
	return data, nil
}
