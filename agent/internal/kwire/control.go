package kwire

import (
	"encoding/binary"
	"hash/crc32"
)

// ControlBatchLen is the size of a transaction marker's control batch: a 61-byte header and one
// 17-byte control record.
const ControlBatchLen = 78

// Marker is what a transaction marker's control batch is made of (docs/INTERNALS.md, "Markers"): a
// commit record carries these fields, not the batch, and the agent makes the batch when it serves or
// merges the marker.
type Marker struct {
	BaseOffset       int64
	LeaderEpoch      int32
	ProducerID       int64
	ProducerEpoch    int16
	Commit           bool // false: abort
	CoordinatorEpoch int32
	Timestamp        int64 // unix ms
}

// AppendControlBatch appends m's control batch to dst, as Kafka writes one: attributes transactional
// and control, no sequence, one record whose key is (version 0, type 0 abort or 1 commit) and whose
// value is (version 0, coordinator epoch).
func AppendControlBatch(dst []byte, m Marker) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, ControlBatchLen)...)
	b := dst[start:]
	be := binary.BigEndian
	be.PutUint64(b[offBaseOffset:], uint64(m.BaseOffset))
	be.PutUint32(b[offBatchLength:], ControlBatchLen-batchLogOverhead)
	be.PutUint32(b[offLeaderEpoch:], uint32(m.LeaderEpoch))
	b[offMagic] = 2
	be.PutUint16(b[offAttributes:], attrTransactional|attrControl)
	// lastOffsetDelta 0: already zero
	be.PutUint64(b[offFirstTimestamp:], uint64(m.Timestamp))
	be.PutUint64(b[offMaxTimestamp:], uint64(m.Timestamp))
	be.PutUint64(b[offProducerID:], uint64(m.ProducerID))
	be.PutUint16(b[offProducerEpoch:], uint16(m.ProducerEpoch))
	be.PutUint32(b[offBaseSequence:], 0xffffffff) // -1
	be.PutUint32(b[offNumRecords:], 1)
	r := b[BatchHeaderLen:]
	r[0] = 16 << 1 // record length 16 (zig-zag varint); attributes, timestamp and offset deltas 0
	r[4] = 4 << 1  // key length 4
	// key: version 0, then the type
	if m.Commit {
		r[8] = 1
	}
	r[9] = 6 << 1 // value length 6
	// value: version 0, then the coordinator epoch
	be.PutUint32(r[12:], uint32(m.CoordinatorEpoch))
	// headers: count 0, already zero
	be.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], crc32c))
	return dst
}
