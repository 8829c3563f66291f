package agent

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
	batchHeaderLen    = 61
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

	codecNone   = 0
	codecGzip   = 1
	codecSnappy = 2
	codecLz4    = 3
	codecZstd   = 4
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Why a batch is refused; kafkaCode maps each to the code Kafka answers with.
var (
	errBatchCorrupt       = errors.New("corrupt record batch")                             // CORRUPT_MESSAGE
	errBatchInvalid       = errors.New("invalid record batch")                             // INVALID_RECORD
	errBatchTimestamp     = errors.New("record timestamp out of range")                    // INVALID_TIMESTAMP
	errBatchTooLarge      = errors.New("record batch decompresses past the agent's limit") // MESSAGE_TOO_LARGE
	errBatchMagic         = errors.New("record batch magic is not 2")
	errBatchCount         = errors.New("exactly one record batch per partition is allowed")
	errBatchTransactional = errors.New("transactional and control batches are not supported")
)

// batchMeta is what the sequencer needs of a batch, as its records bear it out (parseProduceBatch).
type batchMeta struct {
	records       int32 // lastOffsetDelta + 1, the records present
	maxTimestamp  int64 // the largest record timestamp
	producerID    int64
	producerEpoch int16
	baseSequence  int32
}

// lastSequence is the sequence of the batch's last record; sequences wrap at MaxInt32 as in Kafka.
func (m batchMeta) lastSequence() int32 {
	return int32((int64(m.baseSequence) + int64(m.records) - 1) % (1 << 31))
}

// parseProduceBatch validates the records of one partition of a produce request as Kafka's
// LogValidator does for magic 2 (docs/INTERNALS.md lists each check and its Kafka error): exactly one
// v2 batch, a consistent length, a correct CRC, a header whose count and offsets the records bear
// out, and well-formed records, decompressed (streaming, at most maxDecompressed bytes) when the batch
// is compressed. What it returns is derived from the records, not taken from the header.
func parseProduceBatch(b []byte, maxDecompressed int64) (batchMeta, error) {
	if err := checkBatchFrame(b); err != nil {
		return batchMeta{}, err
	}
	attrs := binary.BigEndian.Uint16(b[offAttributes:])
	if attrs&(attrTransactional|attrControl) != 0 {
		return batchMeta{}, errBatchTransactional
	}
	m := batchMeta{
		records:       int32(binary.BigEndian.Uint32(b[offNumRecords:])),
		producerID:    int64(binary.BigEndian.Uint64(b[offProducerID:])),
		producerEpoch: int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		baseSequence:  int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
	}
	if delta := int32(binary.BigEndian.Uint32(b[offLastDelta:])); m.records <= 0 || delta != m.records-1 {
		return batchMeta{}, fmt.Errorf("%w: %d records but last offset delta %d", errBatchInvalid, m.records, delta)
	}
	if m.producerID >= 0 && m.baseSequence < 0 {
		return batchMeta{}, fmt.Errorf("%w: producer %d with base sequence %d", errBatchInvalid, m.producerID, m.baseSequence)
	}
	codec := int8(attrs & attrCodec)
	if codec > codecZstd {
		return batchMeta{}, fmt.Errorf("%w: unknown compression codec %d", errBatchCorrupt, codec)
	}
	firstTS := int64(binary.BigEndian.Uint64(b[offFirstTimestamp:]))
	var err error
	if m.maxTimestamp, err = validateRecords(b[batchHeaderLen:], codec, m.records, firstTS, maxDecompressed); err != nil {
		return batchMeta{}, err
	}
	return m, nil
}

// checkBatchFrame checks what Kafka checks of a batch before reading it: one batch of magic 2 whose
// length is the bytes sent, with a correct CRC.
func checkBatchFrame(b []byte) error {
	if len(b) < batchHeaderLen {
		if len(b) > offMagic && b[offMagic] != 2 {
			return errBatchMagic
		}
		return fmt.Errorf("%w: %d bytes is shorter than a batch header", errBatchCorrupt, len(b))
	}
	if b[offMagic] != 2 {
		return errBatchMagic
	}
	length := int64(int32(binary.BigEndian.Uint32(b[offBatchLength:])))
	switch total := length + batchLogOverhead; {
	case total < batchHeaderLen:
		return fmt.Errorf("%w: batch length %d", errBatchCorrupt, length)
	case total < int64(len(b)):
		return errBatchCount
	case total > int64(len(b)):
		return fmt.Errorf("%w: batch length %d exceeds the %d bytes sent", errBatchCorrupt, length, len(b))
	}
	if crc32Of(b[offAttributes:]) != binary.BigEndian.Uint32(b[offCRC:]) {
		return fmt.Errorf("%w: CRC mismatch", errBatchCorrupt)
	}
	return nil
}

// batchSpan reports the length and record count of the batch at the start of b, for walking stored
// extents. It trusts nothing: a short or inconsistent header is an error.
func batchSpan(b []byte) (length int, records int64, err error) {
	if len(b) < batchHeaderLen {
		return 0, 0, fmt.Errorf("%w: %d bytes left, less than a batch header", errBatchCorrupt, len(b))
	}
	n := int64(int32(binary.BigEndian.Uint32(b[offBatchLength:]))) + batchLogOverhead
	if n < batchHeaderLen || n > int64(len(b)) {
		return 0, 0, fmt.Errorf("%w: batch length %d with %d bytes left", errBatchCorrupt, n, len(b))
	}
	delta := int64(int32(binary.BigEndian.Uint32(b[offLastDelta:])))
	if delta < 0 {
		return 0, 0, fmt.Errorf("%w: last offset delta %d", errBatchCorrupt, delta)
	}
	return int(n), delta + 1, nil
}

// patchBatches copies the batches of src into dst, giving them consecutive offsets from base and the
// leader epoch; batches ending before skipBelow are left out (a fetch from the middle of an entry).
// It returns dst and the offset after the last batch.
func patchBatches(dst, src []byte, base int64, epoch int32, skipBelow int64) ([]byte, int64, error) {
	for len(src) > 0 {
		n, records, err := batchSpan(src)
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

// storedCRC is the CRC-32C of a whole batch as stored (its extent's CRC), derived from the batch's own
// CRC, which parseProduceBatch checked over all but its first 21 bytes: the batch is not read again.
func storedCRC(b []byte) uint32 {
	return segstore.CombineCRC(crc32Of(b[:offAttributes]), binary.BigEndian.Uint32(b[offCRC:]), int64(len(b)-offAttributes))
}

// parseBatch is parseProduceBatch with this agent's decompression limit; it counts the batches
// refused at the limit.
func (a *Agent) parseBatch(b []byte) (batchMeta, error) {
	m, err := parseProduceBatch(b, a.cfg.MaxDecompressedBatchBytes)
	if errors.Is(err, errBatchTooLarge) {
		a.metrics.trust.decompressLimit.Inc()
	}
	return m, err
}
