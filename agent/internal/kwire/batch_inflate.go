package kwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// Compressed batches are validated through the compression libraries franz-go uses, streaming: a
// decompressor per codec, pooled, feeds a window of inflateWindow bytes that recReader walks, and
// the decompressed batch is never held whole. Raw snappy is the exception (see rawSnappyRecords).

const (
	inflateWindow = 32 << 10
	// maxZstdWindow is the largest window a zstd frame may declare: the decoder allocates it up front.
	// RFC 8878 recommends that decoders support 8 MiB and that encoders not exceed it.
	maxZstdWindow = 8 << 20
	// maxSnappyRatio bounds what a snappy block can decode to: a copy of at most 64 bytes takes at
	// least 3 (its tag and a 2-byte offset).
	maxSnappyRatio = 22
)

// validateRecords walks the n records of a batch body compressed with codec and returns their largest
// timestamp; a compressed body may decompress to at most limit bytes.
func validateRecords(body []byte, codec int8, n int32, firstTS, limit int64) (int64, error) {
	if codec == CodecNone {
		r := recReader{buf: body}
		return r.walk(n, firstTS)
	}
	if codec == CodecSnappy && !bytes.HasPrefix(body, xerialMagic) {
		return rawSnappyRecords(body, n, firstTS, limit)
	}
	pool := &inflaters[codec]
	f := pool.Get().(*inflater)
	defer pool.Put(f)
	src, err := f.open(codec, body, limit)
	if err != nil {
		if err = inflateError(err); errors.Is(err, errEndOfRecords) {
			err = fmt.Errorf("%w: %w", ErrBatchCorrupt, err) // not even a stream header
		}
		return 0, err
	}
	r := recReader{src: src, win: f.win, limit: limit}
	return r.walk(n, firstTS)
}

// inflater is one codec's streaming decompressor and the window it fills.
type inflater struct {
	src  bytes.Reader
	gzip gzip.Reader
	lz4  *lz4.Reader
	zstd *zstd.Decoder
	snap xerialReader
	win  []byte
}

// inflaters pools inflaters by codec, so that one holds only the decoder of its codec.
var inflaters [CodecZstd + 1]sync.Pool

func init() {
	for i := range inflaters {
		inflaters[i].New = func() any { return &inflater{win: make([]byte, inflateWindow)} }
	}
}

// open starts decompressing body, a batch's records compressed with codec.
func (f *inflater) open(codec int8, body []byte, limit int64) (io.Reader, error) {
	f.src.Reset(body)
	switch codec {
	case CodecGzip:
		return &f.gzip, f.gzip.Reset(&f.src)
	case CodecLz4:
		if f.lz4 == nil {
			f.lz4 = lz4.NewReader(nil)
			if err := f.lz4.Apply(lz4.ConcurrencyOption(1)); err != nil {
				return nil, err
			}
		}
		f.lz4.Reset(&f.src)
		return f.lz4, nil
	case CodecZstd:
		if f.zstd == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
				zstd.WithDecoderLowmem(true))
			if err != nil {
				return nil, err
			}
			f.zstd = d
		}
		return f.zstd, f.zstd.Reset(&f.src)
	case CodecSnappy:
		f.snap.reset(body, limit)
		return &f.snap, nil
	}
	return nil, fmt.Errorf("codec %d", codec)
}

// inflateError classifies a decompressor's error: a zstd window over maxZstdWindow is a batch too
// large to validate; anything else is a corrupt batch.
func inflateError(err error) error {
	switch {
	case errors.Is(err, ErrBatchTooLarge), errors.Is(err, ErrBatchCorrupt), errors.Is(err, ErrBatchInvalid):
		return err
	case errors.Is(err, io.EOF):
		return errEndOfRecords
	case errors.Is(err, zstd.ErrWindowSizeExceeded), errors.Is(err, zstd.ErrDecoderSizeExceeded):
		return fmt.Errorf("%w: zstd window over %d bytes: %v", ErrBatchTooLarge, maxZstdWindow, err)
	}
	return fmt.Errorf("%w: decompressing: %v", ErrBatchCorrupt, err)
}

// xerialMagic starts snappy in the Java client's framing: the magic, then a version and the oldest
// compatible version, then blocks, each a big-endian length and a raw snappy block.
var xerialMagic = []byte{130, 83, 78, 65, 80, 80, 89, 0}

const xerialHeaderLen = 16

// xerialReader decodes xerial-framed snappy one block at a time.
type xerialReader struct {
	src    []byte // blocks not yet decoded
	block  []byte // the decoded block, unread bytes first
	buf    []byte // what block is decoded into
	budget int64  // bytes the blocks may still decode to
}

func (x *xerialReader) reset(body []byte, limit int64) {
	x.src, x.block, x.budget = body, nil, limit
	if len(body) < xerialHeaderLen {
		x.src = nil // no blocks: the records end at once
	} else {
		x.src = body[xerialHeaderLen:]
	}
}

func (x *xerialReader) Read(p []byte) (int, error) {
	for len(x.block) == 0 {
		if len(x.src) == 0 {
			return 0, io.EOF
		}
		if err := x.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, x.block)
	x.block = x.block[n:]
	return n, nil
}

// next decodes the next block, after checking what it claims to decode to.
func (x *xerialReader) next() error {
	if len(x.src) < 4 {
		return errors.New("xerial: truncated block length")
	}
	size := int64(binary.BigEndian.Uint32(x.src))
	if size > int64(len(x.src)-4) {
		return fmt.Errorf("xerial: block of %d bytes, %d left", size, len(x.src)-4)
	}
	block := x.src[4 : 4+size]
	x.src = x.src[4+size:]
	n, err := snappyLen(block, x.budget)
	if err != nil {
		return err
	}
	x.budget -= int64(n)
	if cap(x.buf) < n {
		x.buf = make([]byte, n)
	}
	x.block, err = s2.Decode(x.buf[:n], block)
	return err
}

// snappyLen is the length a raw snappy block decodes to, refused beyond budget or beyond what
// snappy can decode to.
func snappyLen(block []byte, budget int64) (int, error) {
	n, err := s2.DecodedLen(block)
	switch {
	case err != nil:
		return 0, err
	case int64(n) > budget:
		return 0, fmt.Errorf("%w: a snappy block decodes to %d bytes, %d allowed", ErrBatchTooLarge, n, budget)
	case int64(n) > maxSnappyRatio*int64(len(block)):
		return 0, fmt.Errorf("a snappy block of %d bytes claims %d", len(block), n)
	}
	return n, nil
}

// rawSnappyBufs holds the buffers raw snappy batches are decoded into, up to maxPooledSnappy bytes.
var rawSnappyBufs sync.Pool // of *[]byte

const maxPooledSnappy = 4 << 20

// rawSnappyRecords walks a batch whose records are one raw snappy block, as librdkafka and franz-go
// write it: its copies may reach anywhere back in the block, so it cannot be decoded in a window, and
// is decoded whole into a pooled buffer once its length is checked (snappyLen).
func rawSnappyRecords(body []byte, n int32, firstTS, limit int64) (int64, error) {
	size, err := snappyLen(body, limit)
	if err != nil {
		return 0, inflateError(err)
	}
	bp, _ := rawSnappyBufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < size {
		bp = new([]byte)
		*bp = make([]byte, size)
	}
	defer func() {
		if cap(*bp) <= maxPooledSnappy {
			rawSnappyBufs.Put(bp)
		}
	}()
	out, err := s2.Decode((*bp)[:size], body)
	if err != nil {
		return 0, inflateError(err)
	}
	r := recReader{buf: out}
	return r.walk(n, firstTS)
}
