package cleaner

import (
	"encoding/binary"
	"hash/crc32"
)

// EachRecord calls fn with the offset and the record of each record of b, in order.
func EachRecord(b Batch, limit int64, fn func(offset int64, r Record) error) error {
	if b.NumRecords == 0 {
		return nil
	}
	recs, err := Decompress(b.Codec(), b.Body(), limit)
	if err != nil {
		return err
	}
	return Records(recs, b.NumRecords, func(r Record) error {
		return fn(b.BaseOffset+int64(r.OffsetDelta), r)
	})
}

// Result is what Rewrite did to a batch.
type Result struct {
	Batch   []byte // the batch to write: b's bytes when nothing was removed; nil when it goes
	Kept    int    // records kept
	Removed int    // records removed
}

// Rewrite returns b with only the records keep accepts. When every record stays, b's own bytes are
// returned (the batch is copied verbatim). Otherwise the kept records' bytes, unchanged, are compressed
// again with b's codec, and the record count, length and CRC are written anew; the base offset, last
// offset delta, timestamps, producer id, epoch and base sequence stay, so the batch spans the offsets it
// always did, with gaps inside (as Kafka's cleaner writes batches). A batch left with no record is
// dropped unless keepEmpty, when it is kept as an empty batch (no records, no compression). Control
// batches are returned as they are.
func Rewrite(b Batch, limit int64, keepEmpty bool, keep func(offset int64, r Record) bool) (Result, error) {
	if b.Control() {
		return Result{Batch: b.Raw, Kept: int(b.NumRecords)}, nil
	}
	var kept [][]byte
	var res Result
	err := EachRecord(b, limit, func(o int64, r Record) error {
		if keep(o, r) {
			kept = append(kept, r.Raw)
			res.Kept++
		} else {
			res.Removed++
		}
		return nil
	})
	if err != nil {
		return Result{}, err
	}
	switch {
	case res.Removed == 0:
		res.Batch = b.Raw
		return res, nil
	case res.Kept == 0 && !keepEmpty:
		return res, nil
	}
	codec := b.Codec()
	if res.Kept == 0 {
		codec = CodecNone
	}
	var recs []byte
	for _, r := range kept {
		recs = append(recs, r...)
	}
	body, err := Compress(codec, recs)
	if err != nil {
		return Result{}, err
	}
	res.Batch = rebuild(b, codec, int32(res.Kept), body)
	return res, nil
}

// Recompress returns b with its records compressed with codec at level (CompressLevel), as Kafka's
// broker rewrites a batch for a topic whose compression.type names another codec than the producer's:
// the records' bytes, the batch's offsets, timestamps and producer fields stay; the attributes name
// codec, and the length and CRC are computed anew. A batch already in codec, and a control batch, are
// returned as they are. limit bounds the decompressed records, as for EachRecord.
func Recompress(b Batch, codec int8, level int, limit int64) ([]byte, error) {
	if b.Codec() == codec || b.Control() {
		return b.Raw, nil
	}
	recs, err := Decompress(b.Codec(), b.Body(), limit)
	if err != nil {
		return nil, err
	}
	body, err := CompressLevel(codec, level, recs)
	if err != nil {
		return nil, err
	}
	return rebuild(b, codec, b.NumRecords, body), nil
}

// rebuild is b's header over body, records of codec: attributes, record count, length and CRC anew.
func rebuild(b Batch, codec int8, records int32, body []byte) []byte {
	out := make([]byte, HeaderLen, HeaderLen+len(body))
	copy(out, b.Raw[:HeaderLen])
	out = append(out, body...)
	attrs := uint16(b.Attributes)&^attrCodec | uint16(codec)
	binary.BigEndian.PutUint16(out[offAttributes:], attrs)
	binary.BigEndian.PutUint32(out[offNumRecords:], uint32(records))
	binary.BigEndian.PutUint32(out[offBatchLength:], uint32(len(out)-logOverhead))
	binary.BigEndian.PutUint32(out[offCRC:], crc32.Checksum(out[offAttributes:], castagnoli))
	return out
}
