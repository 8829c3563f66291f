package segstore

// Segment object format, version 1 (docs/INTERNALS.md). All integers big-endian.
//
//	offset 0   header, 32 bytes: magic "SHSEG\x00\x00\x01", version u16 = 1, flags u16 = 0,
//	           count u32, dirLen u32 (= count*36), dirCRC u32, hdrCRC u32 (of bytes 0..24), reserved u32 = 0
//	offset 32  directory: count entries of 36 bytes: topicID [16]byte, partition i32, pos u64, len u32, crc u32
//	32+dirLen  extent data, back to back, in directory order
//
// Decode accepts exactly what AppendObject produces: extents contiguous from the end of the
// directory to the end of the object, no gaps, no trailing bytes. Every accepted object therefore
// re-encodes to the same bytes, which the fuzz test checks.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

const (
	headerLen   = 32
	dirEntryLen = 36
	formatV1    = 1
	magic       = "SHSEG\x00\x00\x01"
	// maxCount keeps dirLen = count*36 within a uint32.
	maxCount = math.MaxUint32 / dirEntryLen
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Chunk is one partition's bytes (verbatim Kafka record batches) to put in an object.
type Chunk struct {
	TopicID   [16]byte
	Partition int32
	Data      []byte
	// CRC is Data's CRC-32C when the caller already knows it (CombineCRC derives it from checked
	// Kafka batch CRCs), which spares a read of Data; 0 means unknown, and it is computed.
	CRC uint32
}

// Extent locates one chunk in an object: bytes [Pos, Pos+Len) with CRC-32C CRC.
type Extent struct {
	TopicID   [16]byte
	Partition int32
	Pos       int64
	Len       int32
	CRC       uint32
}

// AppendHead appends the head of the object for chunks (its header and directory) to dst and returns
// it and one Extent per chunk, in the same order. The object is the head followed by every chunk's
// Data, in order: a writer can send it as those parts (Writer.Put takes parts) without copying the
// data into one buffer. Extent.Pos is relative to the start of the object, not of dst.
//
// It panics if a chunk is larger than math.MaxInt32 bytes or there are more than ~119M chunks: the
// format cannot represent them, and callers bound flushes far below that.
func AppendHead(dst []byte, chunks []Chunk) ([]byte, []Extent) {
	if len(chunks) > maxCount {
		panic(fmt.Sprintf("segstore: %d chunks exceed the format's limit of %d", len(chunks), maxCount))
	}
	dirLen := len(chunks) * dirEntryLen
	start := len(dst)
	dst = grow(dst, headerLen+dirLen)
	head := dst[start:]
	extents := make([]Extent, len(chunks))
	pos := int64(headerLen + dirLen)
	for i := range chunks {
		c := &chunks[i]
		if len(c.Data) > math.MaxInt32 {
			panic(fmt.Sprintf("segstore: chunk %d is %d bytes, over the format's limit", i, len(c.Data)))
		}
		crc := c.CRC
		if crc == 0 {
			crc = crc32.Checksum(c.Data, castagnoli)
		}
		extents[i] = Extent{TopicID: c.TopicID, Partition: c.Partition, Pos: pos, Len: int32(len(c.Data)), CRC: crc}
		putDirEntry(head[headerLen+i*dirEntryLen:], &extents[i])
		pos += int64(len(c.Data))
	}
	putHeader(head, uint32(len(chunks)), crc32.Checksum(head[headerLen:headerLen+dirLen], castagnoli))
	return dst, extents
}

// AppendObject appends the whole encoded object for chunks to dst (so callers can pool buffers): the
// head AppendHead makes, then each chunk's data. It returns it and one Extent per chunk.
func AppendObject(dst []byte, chunks []Chunk) ([]byte, []Extent) {
	n := headerLen + len(chunks)*dirEntryLen
	for i := range chunks {
		n += len(chunks[i].Data)
	}
	dst = slices.Grow(dst, n)
	dst, extents := AppendHead(dst, chunks)
	for i := range chunks {
		dst = append(dst, chunks[i].Data...)
	}
	return dst, extents
}

// grow extends dst by n bytes, reallocating at most once.
func grow(dst []byte, n int) []byte {
	if cap(dst)-len(dst) < n {
		grown := make([]byte, len(dst), len(dst)+n)
		copy(grown, dst)
		dst = grown
	}
	return dst[:len(dst)+n]
}

func putHeader(obj []byte, count, dirCRC uint32) {
	copy(obj[0:8], magic)
	binary.BigEndian.PutUint16(obj[8:], formatV1)
	binary.BigEndian.PutUint16(obj[10:], 0) // flags
	binary.BigEndian.PutUint32(obj[12:], count)
	binary.BigEndian.PutUint32(obj[16:], count*dirEntryLen)
	binary.BigEndian.PutUint32(obj[20:], dirCRC)
	binary.BigEndian.PutUint32(obj[24:], crc32.Checksum(obj[:24], castagnoli))
	binary.BigEndian.PutUint32(obj[28:], 0) // reserved
}

func putDirEntry(b []byte, e *Extent) {
	copy(b[0:16], e.TopicID[:])
	binary.BigEndian.PutUint32(b[16:], uint32(e.Partition))
	binary.BigEndian.PutUint64(b[20:], uint64(e.Pos))
	binary.BigEndian.PutUint32(b[28:], uint32(e.Len))
	binary.BigEndian.PutUint32(b[32:], e.CRC)
}

// Decode validates a whole object (header and its CRC, directory and its CRC, extents contiguous and
// within bounds, every extent's CRC) and returns its extents. Errors wrap ErrCorrupt. It never
// panics, whatever obj holds.
func Decode(obj []byte) ([]Extent, error) {
	count, err := decodeHeader(obj)
	if err != nil {
		return nil, err
	}
	dirEnd := headerLen + int(count)*dirEntryLen // fits: count <= maxCount and len(obj) >= dirEnd checked
	extents := make([]Extent, count)
	next := int64(dirEnd)
	for i := range extents {
		e, err := decodeDirEntry(obj, i, next)
		if err != nil {
			return nil, err
		}
		if err := VerifyExtent(obj[e.Pos:e.Pos+int64(e.Len)], e.CRC); err != nil {
			return nil, fmt.Errorf("extent %d (partition %d at %d): %w", i, e.Partition, e.Pos, err)
		}
		extents[i] = e
		next = e.Pos + int64(e.Len)
	}
	if next != int64(len(obj)) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the last extent", ErrCorrupt, int64(len(obj))-next)
	}
	return extents, nil
}

// decodeHeader checks the header and the directory's bounds and CRC, and returns the extent count.
func decodeHeader(obj []byte) (uint32, error) {
	if len(obj) < headerLen {
		return 0, fmt.Errorf("%w: %d bytes is shorter than the %d-byte header", ErrCorrupt, len(obj), headerLen)
	}
	if string(obj[:8]) != magic {
		return 0, fmt.Errorf("%w: bad magic %q", ErrCorrupt, obj[:8])
	}
	if got, want := crc32.Checksum(obj[:24], castagnoli), binary.BigEndian.Uint32(obj[24:]); got != want {
		return 0, fmt.Errorf("%w: header crc %08x, want %08x", ErrCorrupt, got, want)
	}
	version, flags := binary.BigEndian.Uint16(obj[8:]), binary.BigEndian.Uint16(obj[10:])
	count, dirLen := binary.BigEndian.Uint32(obj[12:]), binary.BigEndian.Uint32(obj[16:])
	switch {
	case version != formatV1:
		return 0, fmt.Errorf("%w: unsupported version %d", ErrCorrupt, version)
	case flags != 0:
		return 0, fmt.Errorf("%w: unknown flags %#04x", ErrCorrupt, flags)
	case binary.BigEndian.Uint32(obj[28:]) != 0:
		return 0, fmt.Errorf("%w: reserved header field is not zero", ErrCorrupt)
	case count > maxCount || uint64(dirLen) != uint64(count)*dirEntryLen:
		return 0, fmt.Errorf("%w: directory length %d does not match %d extents", ErrCorrupt, dirLen, count)
	case uint64(len(obj))-headerLen < uint64(dirLen):
		return 0, fmt.Errorf("%w: %d-byte directory runs past the end of a %d-byte object", ErrCorrupt, dirLen, len(obj))
	}
	dir := obj[headerLen : headerLen+int(dirLen)]
	if got, want := crc32.Checksum(dir, castagnoli), binary.BigEndian.Uint32(obj[20:]); got != want {
		return 0, fmt.Errorf("%w: directory crc %08x, want %08x", ErrCorrupt, got, want)
	}
	return count, nil
}

// decodeDirEntry reads directory entry i and checks that its extent starts at next (extents are
// back to back: this rules out gaps and overlaps) and ends within obj.
func decodeDirEntry(obj []byte, i int, next int64) (Extent, error) {
	b := obj[headerLen+i*dirEntryLen:]
	pos, n := binary.BigEndian.Uint64(b[20:]), binary.BigEndian.Uint32(b[28:])
	if pos != uint64(next) {
		return Extent{}, fmt.Errorf("%w: extent %d starts at %d, want %d (extents must be back to back)", ErrCorrupt, i, pos, next)
	}
	if n > math.MaxInt32 || uint64(len(obj))-pos < uint64(n) {
		return Extent{}, fmt.Errorf("%w: extent %d [%d, +%d) runs past the end of a %d-byte object", ErrCorrupt, i, pos, n, len(obj))
	}
	e := Extent{Partition: int32(binary.BigEndian.Uint32(b[16:])), Pos: int64(pos), Len: int32(n), CRC: binary.BigEndian.Uint32(b[32:])}
	copy(e.TopicID[:], b[0:16])
	return e, nil
}

// VerifyExtent checks data against crc (CRC-32C, Castagnoli); the error wraps ErrCorrupt.
func VerifyExtent(data []byte, crc uint32) error {
	if got := crc32.Checksum(data, castagnoli); got != crc {
		return fmt.Errorf("%w: extent crc %08x, want %08x (%d bytes)", ErrCorrupt, got, crc, len(data))
	}
	return nil
}
