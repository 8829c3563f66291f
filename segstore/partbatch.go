package segstore

// The framing of Kafka record batches (magic 2), as far as a partition segment needs it: a batch's
// length, its offsets and its max timestamp. Nothing here reads records or checks Kafka's own CRC
// (a block's CRC covers its batches).
//
//	offset 0   baseOffset int64
//	offset 8   batchLength int32 (bytes after this field)
//	offset 12  partitionLeaderEpoch int32
//	offset 16  magic int8 = 2
//	offset 17  crc uint32
//	offset 21  attributes int16
//	offset 23  lastOffsetDelta int32
//	offset 27  baseTimestamp int64
//	offset 35  maxTimestamp int64
//	offset 43  producerId … records count, to offset 61

import (
	"encoding/binary"
	"fmt"
	"math"
)

const (
	batchHeaderLen = 61 // a batch with no records
	batchLogHeader = 12 // baseOffset and batchLength, outside batchLength
	batchMagic     = 2
)

// Span is a run of whole record batches of one partition, back to back: one batch, or the batches an
// index entry covers. Offsets are the Kafka offsets the batches carry (a batch's last offset is its
// base offset plus its lastOffsetDelta); between two spans, and two batches, offsets may skip
// (compacted topics), never go back.
type Span struct {
	Len          int32 // bytes of the batches, their 12-byte log headers included
	FirstOffset  int64 // base offset of the first batch
	LastOffset   int64 // last offset of the last batch
	MaxTimestamp int64
}

// nextBatch reads the header of the batch at the start of data and checks that the whole batch is
// in data. The error wraps ErrCorrupt.
func nextBatch(data []byte) (Span, error) {
	if len(data) < batchHeaderLen {
		return Span{}, fmt.Errorf("%w: %d bytes left, fewer than a record batch header (%d)", ErrCorrupt, len(data), batchHeaderLen)
	}
	be := binary.BigEndian
	base, length := int64(be.Uint64(data[0:])), int32(be.Uint32(data[8:]))
	delta := int32(be.Uint32(data[23:]))
	switch {
	case length < batchHeaderLen-batchLogHeader || length > math.MaxInt32-batchLogHeader:
		return Span{}, fmt.Errorf("%w: record batch length %d", ErrCorrupt, length)
	case int64(length) > int64(len(data))-batchLogHeader:
		return Span{}, fmt.Errorf("%w: record batch of %d bytes runs past the %d bytes left", ErrCorrupt, length+batchLogHeader, len(data))
	case data[16] != batchMagic:
		return Span{}, fmt.Errorf("%w: record batch magic %d, want %d", ErrCorrupt, int8(data[16]), batchMagic)
	case base < 0 || delta < 0 || base > math.MaxInt64-int64(delta):
		return Span{}, fmt.Errorf("%w: record batch base offset %d, last offset delta %d", ErrCorrupt, base, delta)
	}
	return Span{
		Len:          length + batchLogHeader,
		FirstOffset:  base,
		LastOffset:   base + int64(delta),
		MaxTimestamp: int64(be.Uint64(data[35:])),
	}, nil
}

// walkBatches calls fn with the position and span of every batch in data, in order, and checks that
// the batches fill data exactly and that their offsets increase (prevLast is the last offset before
// data; -1 for none). It returns the last offset of the last batch. Its errors wrap ErrCorrupt; an
// error of fn stops the walk and is returned as it is.
func walkBatches(data []byte, prevLast int64, fn func(pos int, s Span) error) (int64, error) {
	for pos := 0; pos < len(data); {
		s, err := nextBatch(data[pos:])
		if err != nil {
			return 0, fmt.Errorf("batch at %d: %w", pos, err)
		}
		if s.FirstOffset <= prevLast {
			return 0, fmt.Errorf("%w: batch at %d starts at offset %d, not after %d", ErrCorrupt, pos, s.FirstOffset, prevLast)
		}
		if err := fn(pos, s); err != nil {
			return 0, err
		}
		prevLast = s.LastOffset
		pos += int(s.Len)
	}
	return prevLast, nil
}

// BatchSpans returns the span of each record batch in data (a block of a partition segment, or any
// run of whole batches), after checking that they fill data exactly with increasing offsets. Errors
// wrap ErrCorrupt; it never panics, whatever data holds.
func BatchSpans(data []byte) ([]Span, error) {
	var spans []Span
	if _, err := walkBatches(data, -1, func(_ int, s Span) error {
		spans = append(spans, s)
		return nil
	}); err != nil {
		return nil, err
	}
	return spans, nil
}

// BatchesFrom returns the part of data (a run of whole batches) that starts with the first batch
// holding offset or a later one: what a fetch from offset serves. It is empty when every batch ends
// before offset. Every batch header of data is checked, as BatchSpans does; it does not allocate.
func BatchesFrom(data []byte, offset int64) ([]byte, error) {
	from := len(data)
	_, err := walkBatches(data, -1, func(pos int, s Span) error {
		if from == len(data) && s.LastOffset >= offset {
			from = pos
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return data[from:], nil
}
