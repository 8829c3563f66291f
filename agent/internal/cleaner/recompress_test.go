package cleaner

import (
	"bytes"
	"testing"

	"github.com/pierrec/lz4/v4"
)

func TestRecompress(t *testing.T) {
	t.Parallel()
	rs := []rec{{0, []byte("a"), bytes.Repeat([]byte("1"), 3000)}, {1, []byte("b"), nil}, {2, nil, []byte("3")}}
	for from, fc := range codecs {
		for to, tc := range codecs {
			raw := testBatch(t, 40, 2, fc, 9, rs)
			b, _, err := ParseBatch(raw)
			if err != nil {
				t.Fatal(err)
			}
			out, err := Recompress(b, tc, LevelDefault, 1<<20)
			if err != nil {
				t.Fatalf("%s to %s: %v", from, to, err)
			}
			if fc == tc {
				if !bytes.Equal(out, raw) {
					t.Errorf("%s to %s: the batch changed; want it as it was", from, to)
				}
				continue
			}
			nb, n, err := ParseBatch(out)
			if err != nil || n != len(out) {
				t.Fatalf("%s to %s: %v", from, to, err)
			}
			if nb.Codec() != tc || nb.BaseOffset != 40 || nb.LastOffsetDelta != 2 || nb.NumRecords != 3 ||
				nb.ProducerID != 9 || nb.FirstTimestamp != b.FirstTimestamp || nb.Attributes&^attrCodec != b.Attributes&^attrCodec {
				t.Errorf("%s to %s: header %+v from %+v", from, to, nb, b)
			}
			// Only the length, the CRC and the attributes' codec bits may differ.
			for _, r := range [][2]int{{0, offBatchLength}, {offBatchLength + 4, offCRC}, {offAttributes + 2, HeaderLen}} {
				if !bytes.Equal(out[r[0]:r[1]], raw[r[0]:r[1]]) {
					t.Errorf("%s to %s: header bytes [%d, %d) changed", from, to, r[0], r[1])
				}
			}
			if got, want := records(t, nb), records(t, b); !bytes.Equal(got, want) {
				t.Errorf("%s to %s: records differ", from, to)
			}
		}
	}
}

// records is b's records, decompressed.
func records(t *testing.T, b Batch) []byte {
	t.Helper()
	recs, err := Decompress(b.Codec(), b.Body(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestCompressLevels(t *testing.T) {
	t.Parallel()
	recs := encodeRecords([]rec{{0, []byte("k"), bytes.Repeat([]byte("abcdefgh"), 4000)}})
	levels := map[int8][]int{
		CodecGzip: {-1, 1, 5, 9},
		CodecLz4:  {1, 2, 9, 17},
		CodecZstd: {-131072, -5, 1, 3, 7, 22},
	}
	for c, ls := range levels {
		for _, l := range ls {
			z, err := CompressLevel(c, l, recs)
			if err != nil {
				t.Fatalf("codec %d level %d: %v", c, l, err)
			}
			got, err := Decompress(c, z, 1<<20)
			if err != nil || !bytes.Equal(got, recs) {
				t.Errorf("codec %d level %d: round trip: %v", c, l, err)
			}
			if len(z) >= len(recs) {
				t.Errorf("codec %d level %d: %d bytes from %d: not compressed", c, l, len(z), len(recs))
			}
		}
	}
	for l, want := range map[int]lz4.CompressionLevel{1: lz4.Fast, 2: lz4.Level2, 9: lz4.Level9, 17: lz4.Level9, LevelDefault: lz4.Fast} {
		if got := lz4Level(l); got != want {
			t.Errorf("lz4 level %d: %v, want %v", l, got, want)
		}
	}
	if zstdEncoderAt(22) == zstdEncoderAt(1) || zstdEncoderAt(3) != zstdEncoder {
		t.Error("zstd levels: want an encoder per speed, the shared one for the default")
	}
}
