package kwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/streamhouse/streamhouse/segstore"
)

// Kafka record batch v2 header layout. baseOffset, batchLength, partitionLeaderEpoch, magic and the CRC
// itself lie outside the CRC, which covers attributes through the end of the batch: the agent may patch
// baseOffset and partitionLeaderEpoch without recomputing it.
const (
	BatchHeaderLen    = 61
	offBaseOffset     = 0
	offBatchLength    = 8
	offLeaderEpoch    = 12
	offMagic          = 16
	offCRC            = 17
	offAttributes     = 21
	offLastDelta      = 23
	offFirstTimestamp = 27
	offMaxTimestamp   = 35
	offProducerID     = 43
	offProducerEpoch  = 51
	offBaseSequence   = 53
	offNumRecords     = 57
	batchLogOverhead  = 12 // baseOffset + batchLength precede the length-counted part

	attrCodec         = 0x07 // none, gzip, snappy, lz4, zstd
	attrTransactional = 1 << 4
	attrControl       = 1 << 5

	CodecNone   = 0
	CodecGzip   = 1
	CodecSnappy = 2
	CodecLz4    = 3
	CodecZstd   = 4
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Why a batch is refused; kafkaCode maps each to the code Kafka answers with.
var (
	ErrBatchCorrupt       = errors.New("corrupt record batch")                             // CORRUPT_MESSAGE
	ErrBatchInvalid       = errors.New("invalid record batch")                             // INVALID_RECORD
	ErrBatchTimestamp     = errors.New("record timestamp out of range")                    // INVALID_TIMESTAMP
	ErrBatchTooLarge      = errors.New("record batch decompresses past the agent's limit") // MESSAGE_TOO_LARGE
	ErrBatchMagic         = errors.New("record batch magic is not 2")
	ErrBatchCount         = errors.New("exactly one record batch per partition is allowed")
	ErrBatchTransactional = errors.New("transactional and control batches are not supported")
	ErrBatchControl       = errors.New("clients cannot append control batches") // INVALID_RECORD
)

// BatchMeta is what the sequencer needs of a batch, as its records bear it out (ParseProduceBatch).
type BatchMeta struct {
	Records       int32 // lastOffsetDelta + 1, the records present
	MaxTimestamp  int64 // the largest record timestamp
	ProducerID    int64
	ProducerEpoch int16
	BaseSequence  int32
	// Transactional: the batch is part of its producer's transaction (attributes bit 4). Whether the
	// agent takes such batches is the caller's to decide.
	Transactional bool
}

// LastSequence is the sequence of the batch's last record; sequences wrap at MaxInt32 as in Kafka.
func (m BatchMeta) LastSequence() int32 {
	return int32((int64(m.BaseSequence) + int64(m.Records) - 1) % (1 << 31))
}

// ParseProduceBatch validates the records of one partition of a produce request as Kafka's
// LogValidator does for magic 2 (docs/INTERNALS.md lists each check and its Kafka error): exactly one
// v2 batch, a consistent length, a correct CRC, a header whose count and offsets the records bear
// out, and well-formed records, decompressed (streaming, at most maxDecompressed bytes) when the batch
// is compressed. What it returns is derived from the records, not taken from the header.
func ParseProduceBatch(b []byte, maxDecompressed int64) (BatchMeta, error) {
	if err := CheckBatchFrame(b); err != nil {
		return BatchMeta{}, err
	}
	attrs := binary.BigEndian.Uint16(b[offAttributes:])
	if attrs&attrControl != 0 {
		return BatchMeta{}, ErrBatchControl
	}
	m := BatchMeta{
		Transactional: attrs&attrTransactional != 0,
		Records:       int32(binary.BigEndian.Uint32(b[offNumRecords:])),
		ProducerID:    int64(binary.BigEndian.Uint64(b[offProducerID:])),
		ProducerEpoch: int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		BaseSequence:  int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
	}
	if delta := int32(binary.BigEndian.Uint32(b[offLastDelta:])); m.Records <= 0 || delta != m.Records-1 {
		return BatchMeta{}, fmt.Errorf("%w: %d records but last offset delta %d", ErrBatchInvalid, m.Records, delta)
	}
	if m.Transactional && m.ProducerID < 0 {
		return BatchMeta{}, fmt.Errorf("%w: a transactional batch without a producer id", ErrBatchInvalid)
	}
	if m.ProducerID >= 0 && m.BaseSequence < 0 {
		return BatchMeta{}, fmt.Errorf("%w: producer %d with base sequence %d", ErrBatchInvalid, m.ProducerID, m.BaseSequence)
	}
	codec := int8(attrs & attrCodec)
	if codec > CodecZstd {
		return BatchMeta{}, fmt.Errorf("%w: unknown compression codec %d", ErrBatchCorrupt, codec)
	}
	firstTS := int64(binary.BigEndian.Uint64(b[offFirstTimestamp:]))
	var err error
	if m.MaxTimestamp, err = validateRecords(b[BatchHeaderLen:], codec, m.Records, firstTS, maxDecompressed); err != nil {
		return BatchMeta{}, err
	}
	return m, nil
}

// CheckBatchFrame checks what Kafka checks of a batch before reading it: one batch of magic 2 whose
// length is the bytes sent, with a correct CRC.
func CheckBatchFrame(b []byte) error {
	if len(b) < BatchHeaderLen {
		if len(b) > offMagic && b[offMagic] != 2 {
			return ErrBatchMagic
		}
		return fmt.Errorf("%w: %d bytes is shorter than a batch header", ErrBatchCorrupt, len(b))
	}
	if b[offMagic] != 2 {
		return ErrBatchMagic
	}
	length := int64(int32(binary.BigEndian.Uint32(b[offBatchLength:])))
	switch total := length + batchLogOverhead; {
	case total < BatchHeaderLen:
		return fmt.Errorf("%w: batch length %d", ErrBatchCorrupt, length)
	case total < int64(len(b)):
		return ErrBatchCount
	case total > int64(len(b)):
		return fmt.Errorf("%w: batch length %d exceeds the %d bytes sent", ErrBatchCorrupt, length, len(b))
	}
	if crc32Of(b[offAttributes:]) != binary.BigEndian.Uint32(b[offCRC:]) {
		return fmt.Errorf("%w: CRC mismatch", ErrBatchCorrupt)
	}
	return nil
}

// BatchSpan reports the length and record count of the batch at the start of b, for walking stored
// extents. It trusts nothing: a short or inconsistent header is an error.
func BatchSpan(b []byte) (length int, records int64, err error) {
	if len(b) < BatchHeaderLen {
		return 0, 0, fmt.Errorf("%w: %d bytes left, less than a batch header", ErrBatchCorrupt, len(b))
	}
	n := int64(int32(binary.BigEndian.Uint32(b[offBatchLength:]))) + batchLogOverhead
	if n < BatchHeaderLen || n > int64(len(b)) {
		return 0, 0, fmt.Errorf("%w: batch length %d with %d bytes left", ErrBatchCorrupt, n, len(b))
	}
	delta := int64(int32(binary.BigEndian.Uint32(b[offLastDelta:])))
	if delta < 0 {
		return 0, 0, fmt.Errorf("%w: last offset delta %d", ErrBatchCorrupt, delta)
	}
	return int(n), delta + 1, nil
}

// PatchBatches copies the batches of src into dst, giving them consecutive offsets from base and the
// leader epoch; batches ending before skipBelow are left out (a fetch from the middle of an entry).
// It returns dst and the offset after the last batch.
func PatchBatches(dst, src []byte, base int64, epoch int32, skipBelow int64) ([]byte, int64, error) {
	for len(src) > 0 {
		n, records, err := BatchSpan(src)
		if err != nil {
			return dst, base, err
		}
		if base+records > skipBelow {
			start := len(dst)
			dst = append(dst, src[:n]...)
			binary.BigEndian.PutUint64(dst[start+offBaseOffset:], uint64(base))
			binary.BigEndian.PutUint32(dst[start+offLeaderEpoch:], uint32(epoch))
		}
		base += records
		src = src[n:]
	}
	return dst, base, nil
}

func crc32Of(b []byte) uint32 { return crc32.Checksum(b, crc32c) }

// StoredCRC is the CRC-32C of a whole batch as stored (its extent's CRC), derived from the batch's own
// CRC, which ParseProduceBatch checked over all but its first 21 bytes: the batch is not read again.
func StoredCRC(b []byte) uint32 {
	return segstore.CombineCRC(crc32Of(b[:offAttributes]), binary.BigEndian.Uint32(b[offCRC:]), int64(len(b)-offAttributes))
}

// Codec is the compression codec a batch's attributes name; a batch too short to have them is
// CodecNone (parsing it refuses it).
func Codec(b []byte) int8 {
	if len(b) <= offAttributes+1 {
		return CodecNone
	}
	return int8(b[offAttributes+1] & attrCodec)
}
