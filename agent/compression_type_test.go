package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// A topic's compression.type names the codec its batches are stored in: a producer's batch in another
// codec is compressed again on receipt, its records and offsets unchanged (consumers read them through
// the batch's new codec); "producer" keeps the producer's codec. Idempotent producers keep their
// sequence through it, and a batch forwarded by an in-zone agent reaches the leader already in the
// topic's codec.
func TestCompressionType(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	a2 := tc.agent("a2", func(c *Config) { c.AZ = "z2" })
	admin := kgoClient(t, nil, a1, a2)
	cases := []struct {
		topic   string
		configs map[string]*string
		produce kgo.CompressionCodec
		want    int8 // the codec consumers find
	}{
		{"zstd", map[string]*string{"compression.type": sp("zstd"), "compression.zstd.level": sp("19")}, kgo.NoCompression(), 4},
		{"plain", map[string]*string{"compression.type": sp("uncompressed")}, kgo.GzipCompression(), 0},
		{"gzip", map[string]*string{"compression.type": sp("GZIP"), "compression.gzip.level": sp("9")}, kgo.SnappyCompression(), 1},
		{"lz4", map[string]*string{"compression.type": sp("lz4"), // at Kafka's default level, 9
			"message.timestamp.type": sp("LogAppendTime")}, kgo.ZstdCompression(), 3},
		{"producer", nil, kgo.SnappyCompression(), 2},
	}
	for _, c := range cases {
		createTopic(t, admin, c.topic, 2, c.configs)
	}
	waitFor(t, "leadership balanced", func() bool { return leadsOf(a1, "zstd") == 1 && leadsOf(a2, "zstd") == 1 })
	for _, c := range cases {
		// A z2 producer writes both partitions through a2, which forwards the one led in z1.
		cl := kgoClient(t, []kgo.Opt{kgo.ClientID("app;az=z2"), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerBatchCompression(c.produce)}, a2)
		var produced []*kgo.Record
		for i := range 300 {
			produced = append(produced, &kgo.Record{Topic: c.topic, Partition: int32(i % 2),
				Value: fmt.Appendf(nil, "%s-%d-%s", c.topic, i, "some text that compresses well, some text that compresses well")})
		}
		if err := cl.ProduceSync(testCtx(t), produced...).FirstErr(); err != nil {
			t.Fatalf("%s: %v", c.topic, err)
		}
		consumed := consumeAll(t, []*Agent{a1, a2}, c.topic, len(produced), kgo.FetchMaxWait(100*time.Millisecond))
		checkDense(t, produced, consumed)
		for _, r := range consumed {
			if got := r.Attrs.CompressionType(); got != uint8(c.want) {
				t.Fatalf("%s: record at %d-%d read from a batch of codec %d, want %d", c.topic, r.Partition, r.Offset, got, c.want)
			}
			if c.topic == "lz4" && r.Attrs.TimestampType() != 1 {
				t.Fatalf("%s: record at %d-%d: want the log append time", c.topic, r.Partition, r.Offset)
			}
		}
	}
	var in, out float64
	for _, a := range []*Agent{a1, a2} {
		in += testutil.ToFloat64(a.metrics.recompressed.WithLabelValues("in"))
		out += testutil.ToFloat64(a.metrics.recompressed.WithLabelValues("out"))
	}
	if in == 0 || out == 0 || testutil.ToFloat64(a1.metrics.recompressed.WithLabelValues("in")) != 0 {
		t.Fatalf("recompressed bytes: in %v, out %v, of them on a1 (which only sequenced forwarded batches) %v; want a2's alone",
			in, out, testutil.ToFloat64(a1.metrics.recompressed.WithLabelValues("in")))
	}
}

// max.message.bytes holds for the batch as stored: a small gzip batch that would be stored larger than
// the topic allows uncompressed is refused with MESSAGE_TOO_LARGE, as Kafka refuses it after its broker
// recompresses.
func TestCompressionTypeChecksTheStoredSize(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	createTopic(t, kgoClient(t, nil, a), "small", 1, map[string]*string{
		"compression.type": sp("uncompressed"), "max.message.bytes": sp("2000")})
	c := dialRaw(t, a)
	records := kwiretest.Records(400) // 400 small records, about 2.8 KB uncompressed
	h := kwiretest.PlainSpec(400)
	h.Codec = 1
	batch := kwiretest.Build(h, kwiretest.Compress(t, 1, records))
	if len(batch) >= 2000 {
		t.Fatalf("test batch of %d bytes: want it under the limit compressed", len(batch))
	}
	wantCode(t, "gzip batch stored uncompressed past max.message.bytes", c.produceOne("small", 0, batch).ErrorCode, kerr.MessageTooLarge)
	small := kwiretest.CodecBatch(t, 1, 10)
	wantOK(t, "small gzip batch", c.produceOne("small", 0, small).ErrorCode)
}
