package kwire

import "encoding/binary"

// attrLogAppendTime is the timestamp type bit of a batch's attributes: set, the batch's records take
// its max timestamp as their time (LogAppendTime).
const attrLogAppendTime = 1 << 3

// StampLogAppendTime gives batch (validated, at least a header long) the LogAppendTime timestamp type
// and ms as its max timestamp, and computes its CRC, which covers both, anew.
func StampLogAppendTime(batch []byte, ms int64) {
	attrs := binary.BigEndian.Uint16(batch[offAttributes:])
	binary.BigEndian.PutUint16(batch[offAttributes:], attrs|attrLogAppendTime)
	binary.BigEndian.PutUint64(batch[offMaxTimestamp:], uint64(ms))
	binary.BigEndian.PutUint32(batch[offCRC:], crc32Of(batch[offAttributes:]))
}

// LogAppendTime is the max timestamp of a batch stamped with its log append time; false for a batch
// that is not (or too short to tell).
func LogAppendTime(batch []byte) (int64, bool) {
	if len(batch) < BatchHeaderLen || binary.BigEndian.Uint16(batch[offAttributes:])&attrLogAppendTime == 0 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(batch[offMaxTimestamp:])), true
}
