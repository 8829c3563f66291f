package agent

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Batches as clients write them, and as hostile ones do: every header field and every record field
// free to disagree with the rest, the CRC always correct over whatever results (a wrong CRC is the
// one thing a validator catches without reading the records).

// testRecord encodes one record with the given offset and timestamp deltas.
func testRecord(offsetDelta int32, tsDelta int64, value []byte) []byte {
	r := kmsg.Record{OffsetDelta: offsetDelta, TimestampDelta64: tsDelta, Value: value}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	return r.AppendTo(nil)
}

// testRecords encodes n records with deltas 0..n-1 and values v0, v1, ....
func testRecords(n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, testRecord(int32(i), int64(i), []byte{'v', byte('0' + i%10)})...)
	}
	return b
}

// testCodecs are the codecs of batch attributes, by name.
var testCodecs = map[string]int8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

// compressRecords compresses records as franz-go does for codec (0: as they are). Snappy is a raw
// block, as franz-go and librdkafka write it; xerialSnappy gives the Java client's framing.
func compressRecords(t testing.TB, codec int8, records []byte) []byte {
	t.Helper()
	if codec == 0 {
		return records
	}
	c, err := kgo.DefaultCompressor([]kgo.CompressionCodec{
		kgo.NoCompression(), kgo.GzipCompression(), kgo.SnappyCompression(), kgo.Lz4Compression(), kgo.ZstdCompression(),
	}[codec])
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	out, used := c.Compress(&buf, records)
	if int8(used) != codec {
		t.Fatalf("compressed with codec %d, want %d", used, codec)
	}
	return bytes.Clone(out)
}

// xerialSnappy frames records as the Java client's snappy stream: a header, then blocks of at most
// chunk bytes, each a length and a raw snappy block.
func xerialSnappy(records []byte, chunk int) []byte {
	out := []byte{130, 83, 78, 65, 80, 80, 89, 0, 0, 0, 0, 1, 0, 0, 0, 1}
	for len(records) > 0 {
		n := min(chunk, len(records))
		block := s2.EncodeSnappy(nil, records[:n])
		out = binary.BigEndian.AppendUint32(out, uint32(len(block)))
		out = append(out, block...)
		records = records[n:]
	}
	return out
}

// batchSpec is a batch header; the zero values of the count fields mean "consistent with the
// records".
type batchSpec struct {
	codec      int8
	lastDelta  int32 // lastOffsetDelta; used when count is set
	numRecords int32
	count      bool // lastDelta and numRecords are given
	firstTS    int64
	maxTS      int64
	pid        int64
	epoch      int16
	seq        int32
}

// plainSpec is the header of a non-idempotent batch of n records.
func plainSpec(n int) batchSpec {
	return batchSpec{lastDelta: int32(n - 1), numRecords: int32(n), count: true, firstTS: 1000, maxTS: 1000 + int64(n-1), pid: -1, epoch: -1, seq: -1}
}

// buildBatch assembles a v2 batch around body (records, compressed or not, as given) with header h,
// and the CRC it needs.
func buildBatch(h batchSpec, body []byte) []byte {
	b := kmsg.RecordBatch{Magic: 2, Attributes: int16(h.codec), LastOffsetDelta: h.lastDelta, FirstTimestamp: h.firstTS,
		MaxTimestamp: h.maxTS, ProducerID: h.pid, ProducerEpoch: h.epoch, FirstSequence: h.seq, NumRecords: h.numRecords, Records: body}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[offBatchLength:], uint32(len(raw)-batchLogOverhead))
	binary.BigEndian.PutUint32(raw[offCRC:], crc32Of(raw[offAttributes:]))
	return raw
}

// codecBatch is a valid batch of n records compressed with codec.
func codecBatch(t testing.TB, codec int8, n int) []byte {
	t.Helper()
	h := plainSpec(n)
	h.codec = codec
	return buildBatch(h, compressRecords(t, codec, testRecords(n)))
}
