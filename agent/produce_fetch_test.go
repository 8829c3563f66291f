package agent

import (
	"context"
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// produceN produces n records to topic (values "<prefix>-<i>", round-robin over partitions) and returns
// each record as acknowledged.
func produceN(t *testing.T, cl *kgo.Client, topic, prefix string, n int) []*kgo.Record {
	t.Helper()
	var recs []*kgo.Record
	for i := range n {
		recs = append(recs, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "%s-%d", prefix, i)})
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return recs
}

// consumeAll reads topic from the start until it has n records.
func consumeAll(t *testing.T, agents []*Agent, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	cl := kgoClient(t, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...), agents...)
	ctx := testCtx(t)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records before timing out", len(out), n)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("fetch errors: %v", errs)
		}
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("consumed %d records, want %d", len(out), n)
	}
	return out
}

// checkDense asserts that, per partition, the records carry offsets 0..k-1 with no gap or repeat, and
// that every value produced was read exactly once.
func checkDense(t *testing.T, produced, consumed []*kgo.Record) {
	t.Helper()
	next := map[int32]int64{}
	seen := map[string]int{}
	for _, r := range consumed {
		if r.Offset != next[r.Partition] {
			t.Fatalf("partition %d: offset %d, want %d", r.Partition, r.Offset, next[r.Partition])
		}
		next[r.Partition]++
		seen[string(r.Value)]++
	}
	for _, r := range produced {
		if seen[string(r.Value)] != 1 {
			t.Fatalf("value %q read %d times, want once", r.Value, seen[string(r.Value)])
		}
	}
}

func TestProduceConsumeRoundTrip(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	for _, codec := range []struct {
		name  string
		codec kgo.CompressionCodec
	}{
		{"none", kgo.NoCompression()},
		{"gzip", kgo.GzipCompression()},
		{"snappy", kgo.SnappyCompression()},
		{"lz4", kgo.Lz4Compression()},
		{"zstd", kgo.ZstdCompression()},
	} {
		t.Run(codec.name, func(t *testing.T) {
			cl := kgoClient(t, []kgo.Opt{kgo.ProducerBatchCompression(codec.codec)}, a)
			topic := "rt-" + codec.name
			createTopic(t, cl, topic, 3, nil)
			produced := produceN(t, cl, topic, codec.name, 300)
			for _, r := range produced {
				if r.Offset < 0 {
					t.Fatalf("record acknowledged with offset %d", r.Offset)
				}
			}
			consumed := consumeAll(t, []*Agent{a}, topic, len(produced))
			checkDense(t, produced, consumed)
		})
	}
}

func TestRestartLosesNothing(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createTopic(t, cl, "durable", 2, nil)
	first := produceN(t, cl, "durable", "before", 100)
	cl.Close()
	if err := a.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	b := tc.agent("a1")
	cl = kgoClient(t, nil, b)
	second := produceN(t, cl, "durable", "after", 100)
	consumed := consumeAll(t, []*Agent{b}, "durable", 200)
	checkDense(t, append(first, second...), consumed)
}
