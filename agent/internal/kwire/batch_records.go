package kwire

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// The records of a v2 batch, walked once to check that they bear out the batch header, as Kafka's
// DefaultRecord.readFrom reads them:
//
//	length varint | attributes int8 | timestampDelta varlong | offsetDelta varint |
//	keyLength varint | key | valueLength varint | value | headerCount varint |
//	headerCount × (keyLength varint | key | valueLength varint | value)
//
// Nothing is decoded into memory: keys, values and headers are skipped. An uncompressed batch is
// walked where it lies; a compressed one through a window refilled from a streaming decompressor
// (batch_inflate.go), so that the decompressed batch is never held whole.

// errEndOfRecords: the records ended (an uncompressed batch's bytes, or a decompressed stream)
// before what a record or the header declared.
var errEndOfRecords = errors.New("records end early")

// recReader reads record bytes from buf, refilling it from src when src is set.
type recReader struct {
	buf   []byte // unread bytes are buf[pos:]
	pos   int
	src   io.Reader // nil: buf holds every byte
	win   []byte    // what buf is refilled into
	off   int64     // bytes consumed before buf[0]
	limit int64     // most bytes src may yield
	err   error     // src's error, once it returned one with bytes
}

// consumed is how many bytes have been read.
func (r *recReader) consumed() int64 { return r.off + int64(r.pos) }

func (r *recReader) readByte() (byte, error) {
	if r.pos < len(r.buf) {
		b := r.buf[r.pos]
		r.pos++
		return b, nil
	}
	return r.refillByte()
}

func (r *recReader) refillByte() (byte, error) {
	if err := r.fill(); err != nil {
		return 0, err
	}
	b := r.buf[r.pos]
	r.pos++
	return b, nil
}

// maxEmptyReads bounds the reads in a row that return nothing, as bufio does.
const maxEmptyReads = 100

// fill makes at least one unread byte available, refilling buf from src once it is read.
func (r *recReader) fill() error {
	if r.pos < len(r.buf) {
		return nil
	}
	if r.src == nil {
		return errEndOfRecords
	}
	r.off += int64(len(r.buf))
	r.buf, r.pos = r.win[:0], 0
	for empty := 0; len(r.buf) == 0; empty++ {
		if r.err != nil {
			return r.err
		}
		if empty == maxEmptyReads {
			return fmt.Errorf("%w: %v", ErrBatchCorrupt, io.ErrNoProgress)
		}
		n, err := r.src.Read(r.win)
		r.buf = r.win[:n]
		if r.off+int64(n) > r.limit {
			return fmt.Errorf("%w: more than %d bytes decompressed", ErrBatchTooLarge, r.limit)
		}
		if err != nil {
			r.err = inflateError(err)
		}
	}
	return nil
}

// skip reads past n bytes.
func (r *recReader) skip(n int64) error {
	for n > 0 {
		if err := r.fill(); err != nil {
			return err
		}
		k := min(n, int64(len(r.buf)-r.pos))
		r.pos += int(k)
		n -= k
	}
	return nil
}

// varint reads a zigzag varint of at most 5 bytes, as Kafka's ByteUtils.readVarint (bits past 32
// are dropped, as there).
func (r *recReader) varint() (int32, error) {
	x, err := r.uvarint(5)
	return int32(uint32(x)>>1) ^ -int32(x&1), err
}

// varlong reads a zigzag varint of at most 10 bytes, as Kafka's ByteUtils.readVarlong.
func (r *recReader) varlong() (int64, error) {
	x, err := r.uvarint(10)
	return int64(x>>1) ^ -int64(x&1), err
}

var errVarintTooLong = fmt.Errorf("%w: varint too long", ErrBatchInvalid)

// uvarint reads a varint of at most maxLen bytes: from buf at once when it holds that many, which is
// nearly always, else a byte at a time across refills.
func (r *recReader) uvarint(maxLen int) (uint64, error) {
	var x uint64
	if b := r.buf[r.pos:]; len(b) >= maxLen {
		for i, c := range b[:maxLen] {
			x |= uint64(c&0x7f) << (7 * i)
			if c < 0x80 {
				r.pos += i + 1
				return x, nil
			}
		}
		return 0, errVarintTooLong
	}
	for i := range maxLen {
		c, err := r.readByte()
		if err != nil {
			return 0, err
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, errVarintTooLong
}

// walk reads n records and then the end of the records, and returns the largest record timestamp.
func (r *recReader) walk(n int32, firstTS int64) (int64, error) {
	maxTS := int64(math.MinInt64)
	for i := range n {
		ts, err := r.record(i, firstTS)
		if err != nil {
			return 0, recordError(i, err)
		}
		maxTS = max(maxTS, ts)
	}
	switch _, err := r.readByte(); {
	case err == nil:
		return 0, fmt.Errorf("%w: bytes after the last of %d records", ErrBatchInvalid, n)
	case !errors.Is(err, errEndOfRecords):
		return 0, err // the decompressor's end: a checksum, a truncated frame
	}
	return maxTS, nil
}

// recordError says which record failed; running out of records is INVALID_RECORD, as in Kafka.
func recordError(i int32, err error) error {
	if errors.Is(err, errEndOfRecords) {
		return fmt.Errorf("%w: record %d: %w", ErrBatchInvalid, i, err)
	}
	return fmt.Errorf("record %d: %w", i, err)
}

// record reads record i of a batch and returns its timestamp.
func (r *recReader) record(i int32, firstTS int64) (int64, error) {
	length, err := r.varint()
	if err != nil {
		return 0, err
	}
	if length < 0 {
		return 0, fmt.Errorf("%w: length %d", ErrBatchInvalid, length)
	}
	end := r.consumed() + int64(length)
	if _, err := r.readByte(); err != nil { // attributes, unused in v2
		return 0, err
	}
	tsDelta, err := r.varlong()
	if err != nil {
		return 0, err
	}
	ts := firstTS + tsDelta
	if (tsDelta > 0) != (ts > firstTS) {
		return 0, fmt.Errorf("%w: first timestamp %d + delta %d overflows", ErrBatchTimestamp, firstTS, tsDelta)
	}
	delta, err := r.varint()
	if err != nil {
		return 0, err
	}
	if delta != i {
		return 0, fmt.Errorf("%w: offset delta %d, want %d", ErrBatchInvalid, delta, i)
	}
	if err := r.fields(end); err != nil {
		return 0, err
	}
	if got := r.consumed(); got != end {
		return 0, fmt.Errorf("%w: length %d, fields take %d", ErrBatchInvalid, length, got-(end-int64(length)))
	}
	return ts, nil
}

// fields reads a record's key, value and headers, which must end by end.
func (r *recReader) fields(end int64) error {
	for range 2 { // key, value
		if err := r.bytesField(end, true); err != nil {
			return err
		}
	}
	headers, err := r.varint()
	if err != nil {
		return err
	}
	if headers < 0 {
		return fmt.Errorf("%w: %d headers", ErrBatchInvalid, headers)
	}
	for range headers {
		if r.consumed() >= end { // every header takes 2 bytes at least: a record cannot hide 2^31 of them
			return fmt.Errorf("%w: %d headers overrun the record", ErrBatchInvalid, headers)
		}
		if err := r.bytesField(end, false); err != nil {
			return err
		}
		if err := r.bytesField(end, true); err != nil {
			return err
		}
	}
	return nil
}

// bytesField skips a length-prefixed field (length -1: null, when nullable) that must end by end.
func (r *recReader) bytesField(end int64, nullable bool) error {
	n, err := r.varint()
	if err != nil {
		return err
	}
	if n == -1 && nullable {
		return nil
	}
	if n < 0 || r.consumed()+int64(n) > end {
		return fmt.Errorf("%w: field of %d bytes in a record of %d left", ErrBatchInvalid, n, end-r.consumed())
	}
	return r.skip(int64(n))
}
