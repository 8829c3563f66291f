package coord

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Record is the value of commits/<id>: the entries one sequencing Txn committed, one per partition,
// with the idempotent batches of each. A flush over any number of partitions costs one etcd key
// (docs/INTERNALS.md, "Commit records").
type Record struct {
	Time    int64 // unix ms when the leader committed it
	Entries []RecordEntry
}

// RecordEntry is one partition's share of a commit record.
type RecordEntry struct {
	TP      TP
	Entry   IndexEntry // Bytes is derived from the extents; Segment is never set
	Batches []ProducerBatch
	// Marker, when set, is what the entry holds instead of extents and batches: a transaction's
	// commit or abort marker at Entry.BaseOffset (= LastOffset), a control batch made when served.
	Marker *TxnMarker
}

// TxnMarker is one transaction's end in one partition (docs/INTERNALS.md, "Markers"): the fields
// its control batch is made of, and the revision of the decision it carries out.
type TxnMarker struct {
	ProducerID       int64
	Epoch            int16
	Commit           bool
	CoordinatorEpoch int32
	// TxnVersion is the revision of the transaction's Prepare write: a marker sent again for it
	// finds it written.
	TxnVersion int64
	// FirstOffset is the offset of the producer's first batch of the transaction on the partition,
	// -1 when the transaction wrote nothing there: with the marker's offset it bounds an aborted
	// transaction for read_committed consumers, however the partition was merged since.
	FirstOffset int64
}

// Record versions, the first byte of an encoded record. Version 2 adds markers and the transactional
// flag of producer batches; a record that carries neither is written as version 1, which agents of
// earlier versions read.
const (
	recordVersion   = 1
	recordVersionTx = 2
)

// ErrBadRecord wraps every reason a commit record cannot be decoded.
var ErrBadRecord = errors.New("coord: undecodable commit record")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeRecord appends r's encoding to dst. Layout (varints are Go's, signed ones zig-zag):
//
//	version u8 = 1 | crc u32 (CRC-32C of what follows) | time varint
//	objects: count uvarint, each: length uvarint, bytes     (extents name objects by index)
//	entries: count uvarint, each:
//	  topic [16] | partition uvarint | epoch varint | base uvarint | last-base uvarint | maxTs varint
//	  extents: count uvarint, each: object uvarint | pos uvarint | len uvarint | crc u32
//	  batches: count uvarint, each: producer id uvarint | producer epoch uvarint | first seq uvarint |
//	           last seq uvarint | first offset - base uvarint | last offset - first offset uvarint
//	           [version 2: | flags uvarint (1: transactional)]
//	  [version 2: marker u8 (0: none, 1: one follows, and the entry has no extents nor batches and one
//	   offset) | producer id uvarint | producer epoch uvarint | commit u8 | coordinator epoch varint |
//	   transaction version uvarint | first offset varint (-1: none)]
func encodeRecord(dst []byte, r *Record) []byte {
	start := len(dst)
	version := byte(recordVersion)
	if r.transactional() {
		version = recordVersionTx
	}
	dst = append(dst, version, 0, 0, 0, 0)
	dst = binary.AppendVarint(dst, r.Time)
	objects, names := recordObjects(r)
	dst = binary.AppendUvarint(dst, uint64(len(names)))
	for _, n := range names {
		dst = binary.AppendUvarint(dst, uint64(len(n)))
		dst = append(dst, n...)
	}
	dst = binary.AppendUvarint(dst, uint64(len(r.Entries)))
	for i := range r.Entries {
		dst = appendRecordEntry(dst, &r.Entries[i], objects, version)
	}
	binary.BigEndian.PutUint32(dst[start+1:], crc32.Checksum(dst[start+5:], castagnoli))
	return dst
}

// recordObjects numbers the objects r's extents name, in order of first use.
func recordObjects(r *Record) (map[string]int, []string) {
	objects := map[string]int{}
	var names []string
	for _, e := range r.Entries {
		for _, x := range e.Entry.Extents {
			if _, ok := objects[x.Object]; !ok {
				objects[x.Object] = len(names)
				names = append(names, x.Object)
			}
		}
	}
	return objects, names
}

// transactional reports whether r needs version 2: a marker, or a transactional batch.
func (r *Record) transactional() bool {
	for _, e := range r.Entries {
		if e.Marker != nil {
			return true
		}
		for _, b := range e.Batches {
			if b.Transactional {
				return true
			}
		}
	}
	return false
}

func appendRecordEntry(dst []byte, re *RecordEntry, objects map[string]int, version byte) []byte {
	e := &re.Entry
	dst = append(dst, re.TP.Topic[:]...)
	dst = binary.AppendUvarint(dst, uint64(re.TP.Partition))
	dst = binary.AppendVarint(dst, e.Epoch)
	dst = binary.AppendUvarint(dst, uint64(e.BaseOffset))
	dst = binary.AppendUvarint(dst, uint64(e.LastOffset-e.BaseOffset))
	dst = binary.AppendVarint(dst, e.MaxTimestamp)
	dst = binary.AppendUvarint(dst, uint64(len(e.Extents)))
	for _, x := range e.Extents {
		dst = binary.AppendUvarint(dst, uint64(objects[x.Object]))
		dst = binary.AppendUvarint(dst, uint64(x.Pos))
		dst = binary.AppendUvarint(dst, uint64(x.Len))
		dst = binary.BigEndian.AppendUint32(dst, x.CRC)
	}
	dst = binary.AppendUvarint(dst, uint64(len(re.Batches)))
	for _, b := range re.Batches {
		dst = binary.AppendUvarint(dst, uint64(b.ID))
		dst = binary.AppendUvarint(dst, uint64(b.Epoch))
		dst = binary.AppendUvarint(dst, uint64(b.FirstSeq))
		dst = binary.AppendUvarint(dst, uint64(b.LastSeq))
		dst = binary.AppendUvarint(dst, uint64(b.FirstOffset-e.BaseOffset))
		dst = binary.AppendUvarint(dst, uint64(b.LastOffset-b.FirstOffset))
		if version >= recordVersionTx {
			var flags uint64
			if b.Transactional {
				flags |= batchTransactional
			}
			dst = binary.AppendUvarint(dst, flags)
		}
	}
	if version >= recordVersionTx {
		dst = appendMarker(dst, re.Marker)
	}
	return dst
}

// batchTransactional is the flag of a transactional batch (version 2).
const batchTransactional = 1

func appendMarker(dst []byte, m *TxnMarker) []byte {
	if m == nil {
		return append(dst, 0)
	}
	dst = append(dst, 1)
	dst = binary.AppendUvarint(dst, uint64(m.ProducerID))
	dst = binary.AppendUvarint(dst, uint64(m.Epoch))
	commit := byte(0)
	if m.Commit {
		commit = 1
	}
	dst = append(dst, commit)
	dst = binary.AppendVarint(dst, int64(m.CoordinatorEpoch))
	dst = binary.AppendUvarint(dst, uint64(m.TxnVersion))
	return binary.AppendVarint(dst, m.FirstOffset)
}

// decodeRecord decodes and checks a commit record: its CRC, every count against the bytes left (a
// count can never make it allocate more than the record's own size), every offset, length and id
// within its type's range, extents naming objects the record lists, and nothing left over. It never
// panics, whatever b holds. Entry.Bytes is derived from the extents.
func decodeRecord(b []byte) (Record, error) {
	if len(b) < 5 || (b[0] != recordVersion && b[0] != recordVersionTx) {
		return Record{}, fmt.Errorf("%w: %d bytes, no version %d or %d header", ErrBadRecord, len(b), recordVersion, recordVersionTx)
	}
	if got, want := crc32.Checksum(b[5:], castagnoli), binary.BigEndian.Uint32(b[1:]); got != want {
		return Record{}, fmt.Errorf("%w: crc %08x, want %08x", ErrBadRecord, got, want)
	}
	d := recordDecoder{b: b[5:], version: b[0]}
	r := Record{Time: d.varint()}
	names := make([]string, d.count(1))
	for i := range names {
		names[i] = string(d.bytes(int(d.count(1))))
	}
	r.Entries = make([]RecordEntry, d.count(16+6))
	for i := range r.Entries {
		d.entry(&r.Entries[i], names)
	}
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the last entry", len(d.b))
	}
	if d.err != nil {
		return Record{}, d.err
	}
	return r, nil
}

// recordDecoder reads a record's fields, remembering the first error; once it has one, every read
// returns zero values.
type recordDecoder struct {
	b       []byte
	err     error
	version byte
}

func (d *recordDecoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrBadRecord, fmt.Sprintf(format, args...))
	}
	d.b = nil
}

func (d *recordDecoder) uvarint(limit uint64) uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 || v > limit {
		d.fail("bad or out-of-range varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a number of elements each of which takes at least minBytes: more than the bytes left
// could hold is an error, so that a count never allocates more than the record's size.
func (d *recordDecoder) count(minBytes int) uint64 {
	n := d.uvarint(math.MaxInt32)
	if n > uint64(len(d.b)/minBytes) {
		d.fail("count %d exceeds the %d bytes left", n, len(d.b))
		return 0
	}
	return n
}

func (d *recordDecoder) bytes(n int) []byte {
	if n > len(d.b) {
		d.fail("%d bytes wanted, %d left", n, len(d.b))
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *recordDecoder) entry(re *RecordEntry, names []string) {
	copy(re.TP.Topic[:], d.bytes(16))
	re.TP.Partition = int32(d.uvarint(math.MaxInt32))
	e := &re.Entry
	e.Epoch = d.varint()
	e.BaseOffset = int64(d.uvarint(math.MaxInt64))
	e.LastOffset = e.BaseOffset + int64(d.uvarint(uint64(math.MaxInt64-e.BaseOffset)))
	e.MaxTimestamp = d.varint()
	e.Extents = make([]Extent, d.count(7))
	if len(e.Extents) == 0 && d.version < recordVersionTx {
		d.fail("entry of %s at %d has no extents", re.TP, e.BaseOffset)
		return
	}
	for i := range e.Extents {
		x := &e.Extents[i]
		obj := d.uvarint(uint64(max(len(names)-1, 0)))
		if len(names) == 0 {
			d.fail("extent names an object of an empty list")
			return
		}
		x.Object = names[obj]
		x.Pos = int64(d.uvarint(math.MaxInt64))
		x.Len = int32(d.uvarint(math.MaxInt32))
		if c := d.bytes(4); c != nil {
			x.CRC = binary.BigEndian.Uint32(c)
		}
		e.Bytes += int64(x.Len)
	}
	re.Batches = make([]ProducerBatch, d.count(6))
	for i := range re.Batches {
		d.batch(&re.Batches[i], e)
	}
	if d.version >= recordVersionTx {
		d.marker(re)
	}
}

// marker reads a version 2 entry's marker, and checks that an entry is either a marker (one offset,
// no extents, no batches) or data (extents).
func (d *recordDecoder) marker(re *RecordEntry) {
	switch present := d.bytes(1); {
	case present == nil:
		return
	case present[0] == 0:
		if len(re.Entry.Extents) == 0 {
			d.fail("entry of %s at %d has neither extents nor a marker", re.TP, re.Entry.BaseOffset)
		}
		return
	case present[0] != 1:
		d.fail("marker flag %d", present[0])
		return
	}
	m := &TxnMarker{ProducerID: int64(d.uvarint(math.MaxInt64)), Epoch: int16(d.uvarint(math.MaxInt16))}
	switch c := d.bytes(1); {
	case c == nil:
		return
	case c[0] > 1:
		d.fail("marker commit flag %d", c[0])
		return
	default:
		m.Commit = c[0] == 1
	}
	coordEpoch := d.varint()
	if coordEpoch < math.MinInt32 || coordEpoch > math.MaxInt32 {
		d.fail("coordinator epoch %d", coordEpoch)
		return
	}
	m.CoordinatorEpoch = int32(coordEpoch)
	m.TxnVersion = int64(d.uvarint(math.MaxInt64))
	m.FirstOffset = d.varint()
	if m.FirstOffset < -1 || m.FirstOffset >= re.Entry.BaseOffset && m.FirstOffset != -1 {
		d.fail("marker of %s at %d: first offset %d", re.TP, re.Entry.BaseOffset, m.FirstOffset)
		return
	}
	if len(re.Entry.Extents) > 0 || len(re.Batches) > 0 || re.Entry.LastOffset != re.Entry.BaseOffset {
		d.fail("marker entry of %s at %d holds extents, batches or more than one offset", re.TP, re.Entry.BaseOffset)
		return
	}
	re.Marker = m
	re.Entry.Marker = m // what the view serves
}

func (d *recordDecoder) batch(b *ProducerBatch, e *IndexEntry) {
	b.ID = int64(d.uvarint(math.MaxInt64))
	b.Epoch = int16(d.uvarint(math.MaxInt16))
	b.FirstSeq = int32(d.uvarint(math.MaxInt32))
	b.LastSeq = int32(d.uvarint(math.MaxInt32))
	span := uint64(e.LastOffset - e.BaseOffset)
	first := d.uvarint(span)
	b.FirstOffset = e.BaseOffset + int64(first)
	b.LastOffset = b.FirstOffset + int64(d.uvarint(span-first))
	if d.version >= recordVersionTx {
		flags := d.uvarint(batchTransactional)
		b.Transactional = flags&batchTransactional != 0
	}
}
