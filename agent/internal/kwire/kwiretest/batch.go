package kwiretest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Batches as clients write them, and as hostile ones do: every header field and every record field
// free to disagree with the rest, the CRC always correct over whatever results (a wrong CRC is the
// one thing a validator catches without reading the records).

// Record encodes one record with the given offset and timestamp deltas.
func Record(offsetDelta int32, tsDelta int64, value []byte) []byte {
	r := kmsg.Record{OffsetDelta: offsetDelta, TimestampDelta64: tsDelta, Value: value}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	return r.AppendTo(nil)
}

// Records encodes n records with deltas 0..n-1 and values v0, v1, ....
func Records(n int) []byte {
	var b []byte
	for i := range n {
		b = append(b, Record(int32(i), int64(i), []byte{'v', byte('0' + i%10)})...)
	}
	return b
}

// Codecs are the codecs of batch attributes, by name.
var Codecs = map[string]int8{"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}

// Compress compresses records as franz-go does for codec (0: as they are). Snappy is a raw
// block, as franz-go and librdkafka write it; XerialSnappy gives the Java client's framing.
func Compress(t testing.TB, codec int8, records []byte) []byte {
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

// XerialSnappy frames records as the Java client's snappy stream: a header, then blocks of at most
// chunk bytes, each a length and a raw snappy block.
func XerialSnappy(records []byte, chunk int) []byte {
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

// Spec is a batch header; the zero values of the count fields mean "consistent with the
// records".
type Spec struct {
	Codec      int8
	LastDelta  int32 // lastOffsetDelta; used when count is set
	NumRecords int32
	Count      bool // lastDelta and numRecords are given
	FirstTS    int64
	MaxTS      int64
	Pid        int64
	Epoch      int16
	Seq        int32
}

// PlainSpec is the header of a non-idempotent batch of n records.
func PlainSpec(n int) Spec {
	return Spec{LastDelta: int32(n - 1), NumRecords: int32(n), Count: true, FirstTS: 1000, MaxTS: 1000 + int64(n-1), Pid: -1, Epoch: -1, Seq: -1}
}

// Build assembles a v2 batch around body (records, compressed or not, as given) with header h,
// and the CRC it needs.
func Build(h Spec, body []byte) []byte {
	b := kmsg.RecordBatch{Magic: 2, Attributes: int16(h.Codec), LastOffsetDelta: h.LastDelta, FirstTimestamp: h.FirstTS,
		MaxTimestamp: h.MaxTS, ProducerID: h.Pid, ProducerEpoch: h.Epoch, FirstSequence: h.Seq, NumRecords: h.NumRecords, Records: body}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))                                          // batchLength: all after it
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli))) // CRC-32C from attributes on
	return raw
}

// CodecBatch is a valid batch of n records compressed with codec.
func CodecBatch(t testing.TB, codec int8, n int) []byte {
	t.Helper()
	h := PlainSpec(n)
	h.Codec = codec
	return Build(h, Compress(t, codec, Records(n)))
}

// ValueBatch builds a valid v2 batch carrying values, with timestamps ts (default 1000, 1001, …)
// and the given producer id, epoch and first sequence (-1, -1, -1 for a plain producer).
func ValueBatch(pid int64, epoch int16, seq int32, ts []int64, values ...string) []byte {
	if ts == nil {
		for i := range values {
			ts = append(ts, 1000+int64(i))
		}
	}
	first, maxTS := ts[0], ts[0]
	for _, x := range ts {
		first, maxTS = min(first, x), max(maxTS, x)
	}
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: int32(len(values) - 1), FirstTimestamp: first,
		MaxTimestamp: maxTS, ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: int32(len(values))}
	var recs []byte
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: ts[i] - first, Value: []byte(v)}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	b.Records = recs
	raw := b.AppendTo(nil)
	return Seal(raw)
}

// Values lists n values "<prefix>-<i>".
func Values(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

// Seal sets the batch length and CRC of an encoded batch: what kmsg leaves for the writer to fill in.
func Seal(raw []byte) []byte {
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))                   // batchLength: the bytes after it
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli)) // CRC-32C from the attributes on
	return raw
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)
