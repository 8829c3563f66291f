package segstore

// Partition segment format, version 1 (docs/INTERNALS.md, "Partition segments"). All integers
// big-endian. One partition's record batches, back to back, with their real offsets and leader epochs:
//
//	offset 0    header, 52 bytes: magic "SHPRT\x00\x00\x01", version u16 = 1, flags u16 = 0,
//	            topicID [16]byte, partition i32, baseOffset i64, lastOffset i64,
//	            hdrCRC u32 (of bytes 0..48)
//	offset 52   blocks: runs of whole batches, back to back, up to the footer
//	footerPos   footer: one 40-byte row per block (firstOffset i64, lastOffset i64, pos u64,
//	            len u32, crc u32, maxTimestamp i64), then footerCRC u32 (of the rows)
//	size-32     trailer, 32 bytes: footerPos u64, footerLen u32, footerCRC u32, blockCount u32,
//	            trailerCRC u32 (of its first 20 bytes), end magic "SHPRTEND"
//
// The header holds only what is known before the first batch byte (a merge streams its object); the
// trailer lets the object be opened from its last bytes alone. Decoding accepts exactly what the
// encoders produce (no free bits, no gaps, no trailing bytes), so every accepted object re-encodes to
// the same bytes, which the fuzz test checks.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

const (
	// PartHeaderLen and PartTrailerLen are the fixed sizes of a partition segment's header and
	// trailer: a reader that wants the footer of an object it knows nothing about reads the last
	// PartTrailerLen bytes (DecodePartTrailer).
	PartHeaderLen  = 52
	PartTrailerLen = 32
	// DefaultPartBlockTarget is the size blocks are filled to: the unit of a reader's ranged GET and
	// CRC check, and the granularity at which a fetch finds its first offset.
	DefaultPartBlockTarget = 64 << 10

	partMagic        = "SHPRT\x00\x00\x01"
	partEndMagic     = "SHPRTEND"
	partV1           = 1
	partRowLen       = 40
	partFooterCRCLen = 4
	// maxPartBlocks keeps a footer's length within an int32.
	maxPartBlocks = (math.MaxInt32 - partFooterCRCLen) / partRowLen
)

// PartHeader is what a partition segment's header says.
type PartHeader struct {
	TopicID    [16]byte
	Partition  int32
	BaseOffset int64 // first offset of the first batch
	LastOffset int64 // last offset of the last batch
}

// Block is one row of a partition segment's footer: a run of whole batches that a reader GETs and
// checks (VerifyBlock) as a unit.
type Block struct {
	FirstOffset  int64
	LastOffset   int64
	Pos          int64 // in the object
	Len          int32
	CRC          uint32 // CRC-32C of the block's bytes
	MaxTimestamp int64  // as the spans it was planned from gave it
}

// PartFooter locates and checks a partition segment's footer: what the trailer holds, and what an
// index entry keeps, so that a reader fetches the footer with one ranged GET.
type PartFooter struct {
	Pos int64
	Len int32
	CRC uint32 // CRC-32C of the footer's rows (its last 4 bytes hold it too)
}

// PartSegment describes a partition segment object.
type PartSegment struct {
	PartHeader
	Blocks []Block
	Footer PartFooter
	Size   int64 // bytes of the whole object
}

// MaxTimestamp returns the largest of the blocks' max timestamps (-1 without blocks).
func (s *PartSegment) MaxTimestamp() int64 {
	ts := int64(-1)
	for i := range s.Blocks {
		ts = max(ts, s.Blocks[i].MaxTimestamp)
	}
	return ts
}

// appendPartHeader appends the 52-byte header.
func appendPartHeader(dst []byte, h *PartHeader) []byte {
	start := len(dst)
	dst = append(dst, partMagic...)
	dst = binary.BigEndian.AppendUint16(dst, partV1)
	dst = binary.BigEndian.AppendUint16(dst, 0) // flags
	dst = append(dst, h.TopicID[:]...)
	dst = binary.BigEndian.AppendUint32(dst, uint32(h.Partition))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.BaseOffset))
	dst = binary.BigEndian.AppendUint64(dst, uint64(h.LastOffset))
	return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// appendPartTail appends the footer and the trailer of blocks, whose batches end at footerPos, and
// returns them and the footer's location.
func appendPartTail(dst []byte, blocks []Block, footerPos int64) ([]byte, PartFooter) {
	dst = slices.Grow(dst, len(blocks)*partRowLen+partFooterCRCLen+PartTrailerLen)
	start := len(dst)
	for i := range blocks {
		b := &blocks[i]
		dst = binary.BigEndian.AppendUint64(dst, uint64(b.FirstOffset))
		dst = binary.BigEndian.AppendUint64(dst, uint64(b.LastOffset))
		dst = binary.BigEndian.AppendUint64(dst, uint64(b.Pos))
		dst = binary.BigEndian.AppendUint32(dst, uint32(b.Len))
		dst = binary.BigEndian.AppendUint32(dst, b.CRC)
		dst = binary.BigEndian.AppendUint64(dst, uint64(b.MaxTimestamp))
	}
	f := PartFooter{Pos: footerPos, Len: int32(len(blocks)*partRowLen + partFooterCRCLen), CRC: crc32.Checksum(dst[start:], castagnoli)}
	dst = binary.BigEndian.AppendUint32(dst, f.CRC)
	trailer := len(dst)
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.Pos))
	dst = binary.BigEndian.AppendUint32(dst, uint32(f.Len))
	dst = binary.BigEndian.AppendUint32(dst, f.CRC)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(blocks)))
	dst = binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[trailer:], castagnoli))
	return append(dst, partEndMagic...), f
}

// partSize is the size of an object whose batches end at footerPos and that has n blocks.
func partSize(footerPos int64, n int) int64 {
	return footerPos + int64(n*partRowLen+partFooterCRCLen) + PartTrailerLen
}

// DecodePartHeader decodes the header at the start of b (at least PartHeaderLen bytes). Errors wrap
// ErrCorrupt; it never panics.
func DecodePartHeader(b []byte) (PartHeader, error) {
	if len(b) < PartHeaderLen {
		return PartHeader{}, fmt.Errorf("%w: %d bytes is shorter than the %d-byte partition segment header", ErrCorrupt, len(b), PartHeaderLen)
	}
	be := binary.BigEndian
	if string(b[:8]) != partMagic {
		return PartHeader{}, fmt.Errorf("%w: bad partition segment magic %q", ErrCorrupt, b[:8])
	}
	if got, want := crc32.Checksum(b[:48], castagnoli), be.Uint32(b[48:]); got != want {
		return PartHeader{}, fmt.Errorf("%w: partition segment header crc %08x, want %08x", ErrCorrupt, got, want)
	}
	h := PartHeader{Partition: int32(be.Uint32(b[28:])), BaseOffset: int64(be.Uint64(b[32:])), LastOffset: int64(be.Uint64(b[40:]))}
	copy(h.TopicID[:], b[12:28])
	switch version, flags := be.Uint16(b[8:]), be.Uint16(b[10:]); {
	case version != partV1:
		return PartHeader{}, fmt.Errorf("%w: unsupported partition segment version %d", ErrCorrupt, version)
	case flags != 0:
		return PartHeader{}, fmt.Errorf("%w: unknown partition segment flags %#04x", ErrCorrupt, flags)
	case h.BaseOffset < 0 || h.LastOffset < h.BaseOffset:
		return PartHeader{}, fmt.Errorf("%w: partition segment offsets [%d, %d]", ErrCorrupt, h.BaseOffset, h.LastOffset)
	}
	return h, nil
}

// DecodePartTrailer decodes the trailer at the end of tail, the last bytes (at least PartTrailerLen)
// of an object of size bytes, and returns where its footer is. Errors wrap ErrCorrupt; it never
// panics.
func DecodePartTrailer(tail []byte, size int64) (PartFooter, error) {
	if len(tail) < PartTrailerLen || size < PartHeaderLen+PartTrailerLen {
		return PartFooter{}, fmt.Errorf("%w: %d bytes of a %d-byte object hold no partition segment trailer", ErrCorrupt, len(tail), size)
	}
	t, be := tail[len(tail)-PartTrailerLen:], binary.BigEndian
	if string(t[24:]) != partEndMagic {
		return PartFooter{}, fmt.Errorf("%w: bad partition segment end magic %q", ErrCorrupt, t[24:])
	}
	if got, want := crc32.Checksum(t[:20], castagnoli), be.Uint32(t[20:]); got != want {
		return PartFooter{}, fmt.Errorf("%w: partition segment trailer crc %08x, want %08x", ErrCorrupt, got, want)
	}
	pos, n, count := be.Uint64(t[0:]), be.Uint32(t[8:]), be.Uint32(t[16:])
	switch {
	case count == 0 || count > maxPartBlocks || uint64(n) != uint64(count)*partRowLen+partFooterCRCLen:
		return PartFooter{}, fmt.Errorf("%w: partition segment footer of %d bytes for %d blocks", ErrCorrupt, n, count)
	case pos < PartHeaderLen || pos > uint64(size) || uint64(size)-pos != uint64(n)+PartTrailerLen:
		return PartFooter{}, fmt.Errorf("%w: partition segment footer at %d (+%d) does not end where the %d-byte object's trailer begins", ErrCorrupt, pos, n, size)
	}
	return PartFooter{Pos: int64(pos), Len: int32(n), CRC: be.Uint32(t[12:])}, nil
}

// DecodePartFooter decodes a partition segment's footer, read at f (from the trailer or an index
// entry), and checks it against f: its length and CRC, and blocks that cover the object from its
// header to f.Pos back to back, with increasing offsets. Errors wrap ErrCorrupt; it never panics.
func DecodePartFooter(footer []byte, f PartFooter) ([]Block, error) {
	n := len(footer) - partFooterCRCLen
	if len(footer) != int(f.Len) || n < partRowLen || n%partRowLen != 0 {
		return nil, fmt.Errorf("%w: partition segment footer of %d bytes (want %d, a whole number of %d-byte rows and a crc)", ErrCorrupt, len(footer), f.Len, partRowLen)
	}
	be := binary.BigEndian
	if got := crc32.Checksum(footer[:n], castagnoli); got != be.Uint32(footer[n:]) || got != f.CRC {
		return nil, fmt.Errorf("%w: partition segment footer crc %08x, stored %08x, want %08x", ErrCorrupt, got, be.Uint32(footer[n:]), f.CRC)
	}
	blocks := make([]Block, n/partRowLen)
	for i := range blocks {
		r := footer[i*partRowLen:]
		length := be.Uint32(r[24:])
		if length > math.MaxInt32 {
			return nil, fmt.Errorf("%w: block %d of %d bytes", ErrCorrupt, i, length)
		}
		blocks[i] = Block{
			FirstOffset: int64(be.Uint64(r[0:])), LastOffset: int64(be.Uint64(r[8:])),
			Pos: int64(be.Uint64(r[16:])), Len: int32(length), CRC: be.Uint32(r[28:]),
			MaxTimestamp: int64(be.Uint64(r[32:])),
		}
	}
	end, err := checkBlocks(blocks, -1)
	if err != nil {
		return nil, err
	}
	if end != f.Pos {
		return nil, fmt.Errorf("%w: blocks end at %d, the footer begins at %d", ErrCorrupt, end, f.Pos)
	}
	return blocks, nil
}

// checkBlocks checks that blocks (at least one) lie back to back from the end of the header, each
// holding at least a batch header's bytes, with offsets that increase from after prevLast, and
// returns where the last one ends. Errors wrap ErrCorrupt.
func checkBlocks(blocks []Block, prevLast int64) (int64, error) {
	if len(blocks) == 0 || len(blocks) > maxPartBlocks {
		return 0, fmt.Errorf("%w: a partition segment of %d blocks (1 to %d)", ErrCorrupt, len(blocks), maxPartBlocks)
	}
	next := int64(PartHeaderLen)
	for i := range blocks {
		b := &blocks[i]
		switch {
		case b.Pos != next:
			return 0, fmt.Errorf("%w: block %d at %d, want %d (blocks are back to back)", ErrCorrupt, i, b.Pos, next)
		case b.Len < batchHeaderLen:
			return 0, fmt.Errorf("%w: block %d of %d bytes, fewer than a record batch", ErrCorrupt, i, b.Len)
		case b.FirstOffset < 0 || b.FirstOffset <= prevLast || b.LastOffset < b.FirstOffset:
			return 0, fmt.Errorf("%w: block %d holds offsets [%d, %d] after offset %d", ErrCorrupt, i, b.FirstOffset, b.LastOffset, prevLast)
		}
		next += int64(b.Len)
		prevLast = b.LastOffset
	}
	return next, nil
}

// VerifyBlock checks a block's bytes, read at b.Pos, against its footer row: its length and CRC, and
// whole batches that fill it with increasing offsets from b.FirstOffset to b.LastOffset. Errors wrap
// ErrCorrupt; it never panics.
func VerifyBlock(data []byte, b Block) error {
	if len(data) != int(b.Len) {
		return fmt.Errorf("%w: block at %d is %d bytes, read %d", ErrCorrupt, b.Pos, b.Len, len(data))
	}
	if err := VerifyExtent(data, b.CRC); err != nil {
		return fmt.Errorf("block at %d: %w", b.Pos, err)
	}
	first := int64(-1)
	last, err := walkBatches(data, -1, func(_ int, s Span) error {
		if first < 0 {
			first = s.FirstOffset
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("block at %d: %w", b.Pos, err)
	}
	if first != b.FirstOffset || last != b.LastOffset {
		return fmt.Errorf("%w: block at %d holds offsets [%d, %d], its footer row says [%d, %d]", ErrCorrupt, b.Pos, first, last, b.FirstOffset, b.LastOffset)
	}
	return nil
}

// DecodePartSegment validates a whole partition segment object (header, trailer, footer, every
// block's CRC and batches, offsets matching from the header to the last batch) and describes it.
// Errors wrap ErrCorrupt; it never panics, whatever obj holds.
func DecodePartSegment(obj []byte) (*PartSegment, error) {
	h, err := DecodePartHeader(obj)
	if err != nil {
		return nil, err
	}
	f, err := DecodePartTrailer(obj, int64(len(obj)))
	if err != nil {
		return nil, err
	}
	blocks, err := DecodePartFooter(obj[f.Pos:f.Pos+int64(f.Len)], f)
	if err != nil {
		return nil, err
	}
	if first, last := blocks[0].FirstOffset, blocks[len(blocks)-1].LastOffset; first != h.BaseOffset || last != h.LastOffset {
		return nil, fmt.Errorf("%w: header says offsets [%d, %d], the blocks hold [%d, %d]", ErrCorrupt, h.BaseOffset, h.LastOffset, first, last)
	}
	for i, b := range blocks {
		if err := VerifyBlock(obj[b.Pos:b.Pos+int64(b.Len)], b); err != nil {
			return nil, fmt.Errorf("block %d: %w", i, err)
		}
	}
	return &PartSegment{PartHeader: h, Blocks: blocks, Footer: f, Size: int64(len(obj))}, nil
}
