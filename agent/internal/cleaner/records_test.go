package cleaner

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rec is a test record: key nil for none, value nil for a tombstone.
type rec struct {
	delta int32
	key   []byte
	value []byte
}

func encodeRecords(rs []rec) []byte {
	var b []byte
	for _, r := range rs {
		kr := kmsg.Record{OffsetDelta: r.delta, TimestampDelta64: int64(r.delta), Key: r.key, Value: r.value}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		b = kr.AppendTo(b)
	}
	return b
}

// testBatch builds a v2 batch at base holding rs (their deltas within [0, lastDelta]) compressed with
// codec.
func testBatch(t testing.TB, base int64, lastDelta int32, codec int8, pid int64, rs []rec) []byte {
	t.Helper()
	body, err := Compress(codec, encodeRecords(rs))
	if err != nil {
		t.Fatal(err)
	}
	b := kmsg.RecordBatch{FirstOffset: base, Magic: 2, Attributes: int16(codec), LastOffsetDelta: lastDelta,
		FirstTimestamp: 1000, MaxTimestamp: 1000 + int64(lastDelta), ProducerID: pid, ProducerEpoch: -1,
		FirstSequence: -1, NumRecords: int32(len(rs)), Records: body}
	if pid >= 0 {
		b.ProducerEpoch, b.FirstSequence = 0, 0
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[offBatchLength:], uint32(len(raw)-logOverhead))
	binary.BigEndian.PutUint32(raw[offCRC:], crc32.Checksum(raw[offAttributes:], castagnoli))
	return raw
}

var codecs = map[string]int8{"none": CodecNone, "gzip": CodecGzip, "snappy": CodecSnappy, "lz4": CodecLz4, "zstd": CodecZstd}

func TestCodecsRoundTrip(t *testing.T) {
	t.Parallel()
	recs := encodeRecords([]rec{{0, []byte("a"), bytes.Repeat([]byte("x"), 5000)}, {1, nil, nil}})
	for name, c := range codecs {
		z, err := Compress(c, recs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := Decompress(c, z, 1<<20)
		if err != nil || !bytes.Equal(got, recs) {
			t.Errorf("%s: round trip: %v", name, err)
		}
		if c != CodecNone {
			if _, err := Decompress(c, z, 100); err != ErrTooLarge {
				t.Errorf("%s: past the limit: %v, want ErrTooLarge", name, err)
			}
		}
	}
}

func TestFirstKeyless(t *testing.T) {
	t.Parallel()
	for name, c := range codecs {
		b := testBatch(t, 0, 2, c, -1, []rec{{0, []byte("a"), []byte("1")}, {1, []byte{}, nil}, {2, nil, []byte("3")}})
		i, found, err := FirstKeyless(b, 1<<20)
		if err != nil || !found || i != 2 {
			t.Errorf("%s: %d, %v, %v; want record 2 (an empty key is a key)", name, i, found, err)
		}
		b = testBatch(t, 0, 0, c, -1, []rec{{0, []byte("a"), []byte("1")}})
		if _, found, err := FirstKeyless(b, 1<<20); err != nil || found {
			t.Errorf("%s: keyed batch: %v, %v", name, found, err)
		}
	}
}

func FuzzRecords(f *testing.F) {
	f.Add(encodeRecords([]rec{{0, []byte("a"), []byte("1")}, {1, nil, nil}}), int32(2))
	f.Add([]byte{0x02, 0x00}, int32(1))
	f.Fuzz(func(t *testing.T, b []byte, n int32) {
		if n > 1000 {
			n = 1000
		}
		_ = Records(b, n, func(r Record) error {
			if len(r.Raw) == 0 {
				t.Fatal("empty raw record")
			}
			return nil
		})
	})
}

func FuzzFirstKeyless(f *testing.F) {
	f.Add(testBatch(f, 0, 1, CodecNone, -1, []rec{{0, []byte("a"), nil}, {1, nil, []byte("b")}}))
	f.Add(testBatch(f, 0, 1, CodecZstd, -1, []rec{{0, []byte("a"), nil}, {1, nil, []byte("b")}}))
	f.Add(testBatch(f, 0, 1, CodecSnappy, -1, []rec{{0, []byte("a"), nil}, {1, nil, []byte("b")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = FirstKeyless(b, 1<<20)
	})
}
