package cleaner

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

// errStop ends a walk early without an error.
var errStop = errors.New("cleaner: stop")

// ErrTooLarge is the error of records that decompress past the limit.
var ErrTooLarge = errors.New("cleaner: records decompress past the limit")

// maxZstdWindow is the largest window a zstd frame may ask for (the produce validator's bound).
const maxZstdWindow = 8 << 20

// sharedZstdLimit is the largest limit the shared zstd decoder serves (its memory bound); a larger
// limit gets a decoder of its own.
const sharedZstdLimit = 64 << 20

// zstdDecoder and zstdEncoder are shared: DecodeAll and EncodeAll are safe for concurrent use, and a
// zstd coder is costly to make.
var (
	zstdDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(2), zstd.WithDecoderMaxWindow(maxZstdWindow),
		zstd.WithDecoderMaxMemory(sharedZstdLimit))
	zstdEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(2), zstd.WithWindowSize(1<<20))
)

// xerialMagic opens a snappy batch framed as the Java client frames it.
var xerialMagic = []byte{130, 83, 78, 65, 80, 80, 89, 0}

// Decompress returns a batch body's records, at most limit bytes of them.
func Decompress(codec int8, body []byte, limit int64) ([]byte, error) {
	var r io.Reader
	switch codec {
	case CodecNone:
		return body, nil
	case CodecGzip:
		g, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", ErrCorrupt, err)
		}
		r = g
	case CodecSnappy:
		return unsnappy(body, limit)
	case CodecLz4:
		r = lz4.NewReader(bytes.NewReader(body))
	case CodecZstd:
		if limit <= sharedZstdLimit {
			out, err := zstdDecoder.DecodeAll(body, nil)
			switch {
			case errors.Is(err, zstd.ErrDecoderSizeExceeded), err == nil && int64(len(out)) > limit:
				return nil, ErrTooLarge
			case err != nil:
				return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
			}
			return out, nil
		}
		d, err := zstd.NewReader(bytes.NewReader(body), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(uint64(max(limit, 1))))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
		}
		defer d.Close()
		r = d
	default:
		return nil, fmt.Errorf("%w: codec %d", ErrCorrupt, codec)
	}
	out, err := io.ReadAll(io.LimitReader(r, limit+1))
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return nil, ErrTooLarge
	}
	if err != nil {
		return nil, fmt.Errorf("%w: codec %d: %w", ErrCorrupt, codec, err)
	}
	if int64(len(out)) > limit {
		return nil, ErrTooLarge
	}
	return out, nil
}

// unsnappy decodes a raw snappy block (librdkafka's, franz-go's) or xerial-framed chunks (Java's).
func unsnappy(body []byte, limit int64) ([]byte, error) {
	if !bytes.HasPrefix(body, xerialMagic) {
		return snappyBlock(nil, body, limit)
	}
	if len(body) < 16 {
		return nil, fmt.Errorf("%w: xerial header", ErrCorrupt)
	}
	var out []byte
	for p := 16; p < len(body); {
		if len(body)-p < 4 {
			return nil, fmt.Errorf("%w: xerial chunk length", ErrCorrupt)
		}
		n := int(binary.BigEndian.Uint32(body[p:]))
		p += 4
		if n < 0 || n > len(body)-p {
			return nil, fmt.Errorf("%w: xerial chunk of %d bytes", ErrCorrupt, n)
		}
		var err error
		if out, err = snappyBlock(out, body[p:p+n], limit-int64(len(out))); err != nil {
			return nil, err
		}
		p += n
	}
	return out, nil
}

// snappyBlock appends the decoding of one raw snappy block to dst, refusing one past limit bytes.
func snappyBlock(dst, block []byte, limit int64) ([]byte, error) {
	n, err := s2.DecodedLen(block)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", ErrCorrupt, err)
	}
	if int64(n) > limit {
		return nil, ErrTooLarge
	}
	out, err := s2.Decode(make([]byte, n), block)
	if err != nil {
		return nil, fmt.Errorf("%w: snappy: %w", ErrCorrupt, err)
	}
	return append(dst, out...), nil
}

// LevelDefault asks Compress for its codec's default level.
const LevelDefault = math.MinInt32

// Compress compresses records with codec at its default level, as Kafka's clients frame it: gzip, snappy
// as one raw block (what librdkafka and franz-go write, and Java reads), an lz4 frame, a zstd frame.
func Compress(codec int8, records []byte) ([]byte, error) {
	return CompressLevel(codec, LevelDefault, records)
}

// CompressLevel is Compress at level, read as Kafka's compression.<codec>.level reads it (LevelDefault,
// or Kafka's -1 for gzip: the codec's default): gzip 1–9; lz4 1 for the fast compressor, 2–17 for the
// high-compression ones (the library's strongest above 9); zstd -131072–22, mapped to the nearest of the
// encoder's four speeds. snappy has no levels.
func CompressLevel(codec int8, level int, records []byte) ([]byte, error) {
	switch codec {
	case CodecNone:
		return records, nil
	case CodecSnappy:
		return s2.EncodeSnappy(nil, records), nil
	case CodecZstd:
		return zstdEncoderAt(level).EncodeAll(records, nil), nil
	}
	var buf bytes.Buffer
	var w io.WriteCloser
	switch codec {
	case CodecGzip:
		if level < gzip.HuffmanOnly || level > gzip.BestCompression {
			level = gzip.DefaultCompression
		}
		g, err := gzip.NewWriterLevel(&buf, level)
		if err != nil {
			return nil, err
		}
		w = g
	case CodecLz4:
		lw := lz4.NewWriter(&buf)
		if err := lw.Apply(lz4.CompressionLevelOption(lz4Level(level))); err != nil {
			return nil, err
		}
		w = lw
	default:
		return nil, fmt.Errorf("%w: codec %d", ErrCorrupt, codec)
	}
	if _, err := w.Write(records); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// lz4Level maps Kafka's lz4 level to the library's: the fast compressor for 1 (and the default of a
// batch the cleaner rewrites), a high-compression level for 2 and more, at most the library's 9.
func lz4Level(level int) lz4.CompressionLevel {
	if level <= 1 {
		return lz4.Fast
	}
	return lz4.CompressionLevel(1 << (8 + min(level, 9)))
}

// zstdEncoders are the shared zstd encoders, one per speed, made when first asked for.
var zstdEncoders [zstd.SpeedBestCompression + 1]struct {
	once sync.Once
	enc  *zstd.Encoder
}

// zstdEncoderAt is the shared encoder of the speed nearest to Kafka's zstd level.
func zstdEncoderAt(level int) *zstd.Encoder {
	if level == LevelDefault {
		return zstdEncoder
	}
	speed := zstd.EncoderLevelFromZstd(level)
	if speed == zstd.SpeedDefault {
		return zstdEncoder
	}
	e := &zstdEncoders[speed]
	e.once.Do(func() {
		e.enc, _ = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(2), zstd.WithWindowSize(1<<20), zstd.WithEncoderLevel(speed))
	})
	return e.enc
}
