package e2e

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// kgoCodecs pairs each of codecs with franz-go's option for it.
var kgoCodecs = map[string]kgo.CompressionCodec{
	"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(), "snappy": kgo.SnappyCompression(),
	"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(),
}

// streamhouse's own produce and consume commands (franz-go inside) round-trip 1000 lines, with and
// without keys, and what they wrote is a dense log that another client reads the same.
func TestCLI(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	brokers := d.brokers(t)

	t.Run("values", func(t *testing.T) {
		createTopic(t, brokers, "cli", 3)
		want := values("cli", 1000)
		if out := sh(t, brokers, lines(want), "produce", "cli"); out != "" {
			t.Errorf("produce printed %q, want nothing", out)
		}
		out := sh(t, brokers, "", "consume", "cli", "--from-beginning", "--max", "1000", "--timeout", "30s")
		got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		checkLog(t, asRecords(got), want)
		checkLog(t, readAll(t, brokers, "cli"), want)
	})

	t.Run("keys", func(t *testing.T) {
		createTopic(t, brokers, "cli-keys", 3)
		var in, want []string
		for i := range 300 {
			k, v := "key"+strconv.Itoa(i%20), "cli-keys-"+strconv.Itoa(i)
			in, want = append(in, k+"="+v), append(want, k+"\t"+v)
		}
		sh(t, brokers, lines(in), "produce", "cli-keys", "--key-separator", "=")
		out := sh(t, brokers, "", "consume", "cli-keys", "--from-beginning", "--max", "300", "--timeout", "30s", "--print-keys")
		got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		checkLog(t, asRecords(got), want)
		recs := readAll(t, brokers, "cli-keys")
		checkKeys(t, recs)
		checkSpread(t, recs, 3)
		// One partition from an offset: the records from there on, in offset order.
		slices.SortFunc(recs, func(a, b record) int { return cmp.Compare(a.offset, b.offset) })
		p, from := recs[0].partition, int64(5)
		tail := orderedTail(recs, p, from)
		out = sh(t, brokers, "", "consume", "cli-keys", "--partition", strconv.Itoa(int(p)),
			"--offset", strconv.FormatInt(from, 10), "--max", strconv.Itoa(len(tail)), "--timeout", "30s")
		if got := strings.Split(strings.TrimSuffix(out, "\n"), "\n"); !slices.Equal(got, tail) {
			t.Errorf("consume --partition %d --offset %d = %q, want %q", p, from, got, tail)
		}
	})
}

// orderedTail is the values of partition p from offset from on, in the order of recs.
func orderedTail(recs []record, p int32, from int64) []string {
	var vs []string
	for _, r := range recs {
		if r.partition == p && r.offset >= from {
			vs = append(vs, r.value)
		}
	}
	return vs
}

// asRecords makes values printed by a client that shows no offsets into records, for checkLog's
// exactly-once check; they all get offsets 0, 1, ... of one partition.
func asRecords(vs []string) []record {
	recs := make([]record, len(vs))
	for i, v := range vs {
		recs[i] = record{offset: int64(i), value: v}
	}
	return recs
}

// franz-go with every codec: an idempotent producer (kgo's default) writes 1000 records to a
// 3-partition topic and is told dense offsets; a consumer reads every record back once, at the
// acknowledged offset, from batches with the producer's codec.
func TestKgo(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	brokers := d.brokers(t)
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			topic := "kgo-" + codec
			createTopic(t, brokers, topic, 3)
			want := values(topic, 1000)
			acked := kgoProduce(t, brokers, topic, want, kgo.ProducerBatchCompression(kgoCodecs[codec]),
				kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
			recs := readAll(t, brokers, topic)
			checkLog(t, recs, want)
			checkCodec(t, recs, codec, true)
			checkAcked(t, recs, acked)
		})
	}
}

// kgoProduce writes values with franz-go (idempotent, acks=all) and returns where each was
// acknowledged.
func kgoProduce(t *testing.T, brokers, topic string, vs []string, opts ...kgo.Opt) map[string]record {
	t.Helper()
	cl := newKgo(t, brokers, append([]kgo.Opt{kgo.DefaultProduceTopic(topic)}, opts...)...)
	recs := make([]*kgo.Record, len(vs))
	for i, v := range vs {
		recs[i] = kgo.StringRecord(v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	results := cl.ProduceSync(ctx, recs...)
	if err := results.FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	acked := make(map[string]record, len(vs))
	for _, r := range results {
		acked[string(r.Record.Value)] = record{partition: r.Record.Partition, offset: r.Record.Offset, value: string(r.Record.Value)}
	}
	return acked
}

// checkAcked checks that every record was read where its producer was told it is.
func checkAcked(t *testing.T, recs []record, acked map[string]record) {
	t.Helper()
	for _, r := range recs {
		a, ok := acked[r.value]
		if ok && (a.partition != r.partition || a.offset != r.offset) {
			t.Errorf("%s read at %d[%d], acknowledged at %d[%d]", r.value, r.partition, r.offset, a.partition, a.offset)
		}
	}
}
