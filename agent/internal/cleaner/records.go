package cleaner

import (
	"encoding/binary"
	"fmt"
)

// Record is one record of a batch, as the cleaner needs it. Key and Raw alias the decompressed records.
type Record struct {
	OffsetDelta    int32
	TimestampDelta int64
	Key            []byte // nil: no key
	NullValue      bool   // a tombstone
	Raw            []byte // the record's bytes, its length varint included
}

// Records calls fn with each of the n records in recs (decompressed), in order, and checks that they
// fill recs exactly. A record is
//
//	length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
//	keyLength varint | key | valueLength varint | value | headerCount varint | headers
func Records(recs []byte, n int32, fn func(Record) error) error {
	for i := int32(0); i < n; i++ {
		r, size, err := parseRecord(recs)
		if err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
		if err := fn(r); err != nil {
			return err
		}
		recs = recs[size:]
	}
	if len(recs) != 0 {
		return fmt.Errorf("%w: %d bytes after the last of %d records", ErrCorrupt, len(recs), n)
	}
	return nil
}

// parseRecord reads the record at the start of b; it needs only the fields up to the value's length.
func parseRecord(b []byte) (Record, int, error) {
	length, n := binary.Varint(b)
	if n <= 0 || length < 0 || int64(len(b)-n) < length {
		return Record{}, 0, fmt.Errorf("%w: record length", ErrCorrupt)
	}
	size := n + int(length)
	body := b[n:size]
	if len(body) < 1 {
		return Record{}, 0, fmt.Errorf("%w: empty record", ErrCorrupt)
	}
	p := 1 // attributes
	tsDelta, m := binary.Varint(body[p:])
	if m <= 0 {
		return Record{}, 0, fmt.Errorf("%w: timestamp delta", ErrCorrupt)
	}
	p += m
	delta, m := binary.Varint(body[p:])
	if m <= 0 || delta < 0 || delta > 1<<31-1 {
		return Record{}, 0, fmt.Errorf("%w: offset delta", ErrCorrupt)
	}
	p += m
	r := Record{OffsetDelta: int32(delta), TimestampDelta: tsDelta, Raw: b[:size]}
	key, p, err := bytesField(body, p)
	if err != nil {
		return Record{}, 0, fmt.Errorf("key: %w", err)
	}
	r.Key = key
	vlen, m := binary.Varint(body[p:])
	if m <= 0 || vlen < -1 || int64(len(body)-p-m) < vlen {
		return Record{}, 0, fmt.Errorf("%w: value length", ErrCorrupt)
	}
	r.NullValue = vlen == -1
	return r, size, nil
}

// bytesField reads a nullable length-prefixed field of body at p: nil for null.
func bytesField(body []byte, p int) ([]byte, int, error) {
	l, m := binary.Varint(body[p:])
	if m <= 0 || l < -1 || int64(len(body)-p-m) < l {
		return nil, 0, fmt.Errorf("%w: field length", ErrCorrupt)
	}
	p += m
	if l == -1 {
		return nil, p, nil
	}
	return body[p : p+int(l) : p+int(l)], p + int(l), nil
}

// FirstKeyless returns the index of the first record of batch without a key, and whether there is
// one; the produce path refuses such a batch on a compacted topic. limit bounds the decompressed
// records.
func FirstKeyless(batch []byte, limit int64) (int32, bool, error) {
	b, _, err := ParseBatch(batch)
	if err != nil {
		return 0, false, err
	}
	recs, err := Decompress(b.Codec(), b.Body(), limit)
	if err != nil {
		return 0, false, err
	}
	var i int32
	found := false
	err = Records(recs, b.NumRecords, func(r Record) error {
		if r.Key == nil {
			found = true
			return errStop
		}
		i++
		return nil
	})
	if found {
		return i, true, nil
	}
	return 0, false, err
}

// FirstOutside returns the index of the first record of batch whose timestamp (the batch's first
// timestamp plus its delta) lies outside [from, to], and whether there is one: Kafka's
// message.timestamp.before.max.ms and after.max.ms checks. limit bounds the decompressed records.
func FirstOutside(batch []byte, from, to, limit int64) (int32, bool, error) {
	b, _, err := ParseBatch(batch)
	if err != nil {
		return 0, false, err
	}
	recs, err := Decompress(b.Codec(), b.Body(), limit)
	if err != nil {
		return 0, false, err
	}
	var i int32
	found := false
	err = Records(recs, b.NumRecords, func(r Record) error {
		if ts := b.FirstTimestamp + r.TimestampDelta; ts < from || ts > to {
			found = true
			return errStop
		}
		i++
		return nil
	})
	if found {
		return i, true, nil
	}
	return 0, false, err
}
