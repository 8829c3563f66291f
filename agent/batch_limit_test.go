package agent

import (
	"math"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// A 69-byte batch of one record whose header declares 2^31-1 records (a correct CRC over the lie) is
// refused with INVALID_RECORD and moves no offset: the next batch gets offset 0.
func TestProduceRefusesInflatedRecordCount(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "inflated")
	h := kwiretest.PlainSpec(1)
	h.LastDelta, h.NumRecords = math.MaxInt32-1, math.MaxInt32
	inflated := kwiretest.Build(h, kwiretest.Record(0, 0, []byte{'x'}))
	if len(inflated) != 69 {
		t.Fatalf("the inflated batch is %d bytes, want 69", len(inflated))
	}
	wantCode(t, "inflated batch", c.produceOne("inflated", 0, inflated).ErrorCode, kerr.InvalidRecord)
	if hwm := c.highWatermark("inflated", 0); hwm != 0 {
		t.Fatalf("high watermark %d after a refused batch, want 0", hwm)
	}
	wantOK(t, "next batch", c.produceOne("inflated", 0, valueBatch(-1, -1, -1, nil, "after")).ErrorCode)
	checkLog(t, a, "inflated", 0, []string{"after"})
}

// A compressed batch of 3 records whose header says 5 is refused: the count is checked against the
// records inside the compression, not taken from the header.
func TestProduceRefusesLyingCountInCompressedBatch(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "lying")
	for name, codec := range kwiretest.Codecs {
		if codec == 0 {
			continue
		}
		h := kwiretest.PlainSpec(5)
		h.Codec = codec
		lying := kwiretest.Build(h, kwiretest.Compress(t, codec, kwiretest.Records(3)))
		wantCode(t, name+" batch of 3 records declaring 5", c.produceOne("lying", 0, lying).ErrorCode, kerr.InvalidRecord)
	}
	if hwm := c.highWatermark("lying", 0); hwm != 0 {
		t.Fatalf("high watermark %d after refused batches, want 0", hwm)
	}
}

// Offset deltas must be 0..n-1 in order; a batch whose deltas skip, repeat or run backwards is
// refused even though its header's count matches its records.
func TestProduceRefusesMismatchedOffsetDeltas(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "deltas")
	for name, deltas := range map[string][]int32{
		"skip":      {0, 1, 3},
		"repeat":    {0, 1, 1},
		"backwards": {0, 2, 1},
		"offset":    {1, 2, 3},
	} {
		var recs []byte
		for i, d := range deltas {
			recs = append(recs, kwiretest.Record(d, int64(i), []byte{'x'})...)
		}
		wantCode(t, name, c.produceOne("deltas", 0, kwiretest.Build(kwiretest.PlainSpec(3), recs)).ErrorCode, kerr.InvalidRecord)
	}
	if hwm := c.highWatermark("deltas", 0); hwm != 0 {
		t.Fatalf("high watermark %d after refused batches, want 0", hwm)
	}
}

// Through a running agent: a batch past --max-decompressed-batch-bytes is MESSAGE_TOO_LARGE and
// counted; a zstd batch in a Produce before v7 is UNSUPPORTED_COMPRESSION_TYPE, as in Kafka.
func TestProduceDecompressionLimitAndZstdVersion(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.MaxDecompressedBatchBytes = 64 << 10 })
	c := ledTopicConn(t, a, "limits")
	h := kwiretest.PlainSpec(1)
	h.Codec = kwire.CodecGzip
	bomb := kwiretest.Build(h, kwiretest.Compress(t, kwire.CodecGzip, kwiretest.Record(0, 0, make([]byte, 1<<20))))
	wantCode(t, "gzip batch of 1 MiB over a 64 KiB limit", c.produceOne("limits", 0, bomb).ErrorCode, kerr.MessageTooLarge)
	if got := metricValue(t, a, "streamhouse_batch_decompress_limit_total"); got != 1 {
		t.Fatalf("streamhouse_batch_decompress_limit_total = %v, want 1", got)
	}
	zstd := kwiretest.CodecBatch(t, kwire.CodecZstd, 2)
	p := producePart(t, c.roundTrip(produceReq("limits", -1, map[int32][]byte{0: zstd}), 6))
	wantCode(t, "zstd in Produce v6", p.ErrorCode, kerr.UnsupportedCompressionType)
	wantOK(t, "zstd in Produce v7", producePart(t, c.roundTrip(produceReq("limits", -1, map[int32][]byte{0: zstd}), 7)).ErrorCode)
	if hwm := c.highWatermark("limits", 0); hwm != 2 {
		t.Fatalf("high watermark %d, want 2 (the v7 batch only)", hwm)
	}
}
