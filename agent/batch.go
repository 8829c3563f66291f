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
	batchHeaderLen   = 61
	offBaseOffset    = 0
	offBatchLength   = 8
	offLeaderEpoch   = 12
	offMagic         = 16
	offCRC           = 17
	offAttributes    = 21
	offLastDelta     = 23
	offMaxTimestamp  = 35
	offProducerID    = 43
	offProducerEpoch = 51
	offBaseSequence  = 53
	offNumRecords    = 57
	batchLogOverhead = 12 // baseOffset + batchLength precede the length-counted part

	attrTransactional = 1 << 4
	attrControl       = 1 << 5
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

var (
	errBatchCorrupt       = errors.New("corrupt record batch")
	errBatchMagic         = errors.New("record batch magic is not 2")
	errBatchCount         = errors.New("exactly one record batch per partition is allowed")
	errBatchTransactional = errors.New("transactional and control batches are not supported")
)

// batchMeta is what the sequencer needs from a batch header; the records are never decoded.
type batchMeta struct {
	records       int32 // lastOffsetDelta + 1
	maxTimestamp  int64
	producerID    int64
	producerEpoch int16
	baseSequence  int32
}

// lastSequence is the sequence of the batch's last record; sequences wrap at MaxInt32 as in Kafka.
func (m batchMeta) lastSequence() int32 {
	return int32((int64(m.baseSequence) + int64(m.records) - 1) % (1 << 31))
}

// parseProduceBatch validates the records of one partition of a produce request: exactly one v2
// batch (as Kafka requires of magic 2), a consistent length, a correct CRC and a sane record count.
func parseProduceBatch(b []byte) (batchMeta, error) {
	if len(b) < batchHeaderLen {
		if len(b) > offMagic && b[offMagic] != 2 {
			return batchMeta{}, errBatchMagic
		}
		return batchMeta{}, fmt.Errorf("%w: %d bytes is shorter than a batch header", errBatchCorrupt, len(b))
	}
	if b[offMagic] != 2 {
		return batchMeta{}, errBatchMagic
	}
	length := int64(int32(binary.BigEndian.Uint32(b[offBatchLength:])))
	switch total := length + batchLogOverhead; {
	case total < batchHeaderLen:
		return batchMeta{}, fmt.Errorf("%w: batch length %d", errBatchCorrupt, length)
	case total < int64(len(b)):
		return batchMeta{}, errBatchCount
	case total > int64(len(b)):
		return batchMeta{}, fmt.Errorf("%w: batch length %d exceeds the %d bytes sent", errBatchCorrupt, length, len(b))
	}
	if crc32Of(b[offAttributes:]) != binary.BigEndian.Uint32(b[offCRC:]) {
		return batchMeta{}, fmt.Errorf("%w: CRC mismatch", errBatchCorrupt)
	}
	attrs := binary.BigEndian.Uint16(b[offAttributes:])
	if attrs&(attrTransactional|attrControl) != 0 {
		return batchMeta{}, errBatchTransactional
	}
	m := batchMeta{
		records:       int32(binary.BigEndian.Uint32(b[offLastDelta:])) + 1,
		maxTimestamp:  int64(binary.BigEndian.Uint64(b[offMaxTimestamp:])),
		producerID:    int64(binary.BigEndian.Uint64(b[offProducerID:])),
		producerEpoch: int16(binary.BigEndian.Uint16(b[offProducerEpoch:])),
		baseSequence:  int32(binary.BigEndian.Uint32(b[offBaseSequence:])),
	}
	if n := int32(binary.BigEndian.Uint32(b[offNumRecords:])); m.records <= 0 || n != m.records {
		return batchMeta{}, fmt.Errorf("%w: %d records but last offset delta %d", errBatchCorrupt, n, m.records-1)
	}
	return m, nil
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
