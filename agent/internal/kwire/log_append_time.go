package kwire

import "encoding/binary"

// attrLogAppendTime is the batch attribute saying its max timestamp is the broker's append time.
const attrLogAppendTime = 1 << 3

// StampLogAppendTime marks a v2 batch (validated, not yet written) as carrying its log append time ms:
// the attributes get the timestamp type bit, the max timestamp becomes ms, and the CRC, which covers
// both, is computed anew. Record bytes are untouched. It reports false for a buffer shorter than a
// batch header.
func StampLogAppendTime(batch []byte, ms int64) bool {
	if len(batch) < BatchHeaderLen {
		return false
	}
	attrs := binary.BigEndian.Uint16(batch[offAttributes:])
	binary.BigEndian.PutUint16(batch[offAttributes:], attrs|attrLogAppendTime)
	binary.BigEndian.PutUint64(batch[offMaxTimestamp:], uint64(ms))
	binary.BigEndian.PutUint32(batch[offCRC:], crc32Of(batch[offAttributes:]))
	return true
}

// LogAppendTime is the log append time a batch was stamped with by StampLogAppendTime, if it was.
func LogAppendTime(batch []byte) (int64, bool) {
	if len(batch) < BatchHeaderLen || binary.BigEndian.Uint16(batch[offAttributes:])&attrLogAppendTime == 0 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(batch[offMaxTimestamp:])), true
}
