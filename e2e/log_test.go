package e2e

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readTimeout bounds reading a topic back to its end.
const readTimeout = 60 * time.Second

// record is one record as a client read it back.
type record struct {
	partition int32
	offset    int64
	key       string
	value     string
	codec     uint8 // compression codec of the record's batch (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd); kgo only
}

// codecs are Kafka's compression codecs by the names kcat and the Kafka configs use, in the order of
// their attribute bits.
var codecs = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// values returns n distinct values.
func values(prefix string, n int) []string {
	vs := make([]string, n)
	for i := range vs {
		vs[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return vs
}

// lines joins values as stdin for a one-record-per-line producer.
func lines(vs []string) string { return strings.Join(vs, "\n") + "\n" }

// newKgo is a franz-go client for brokers, closed when the test ends.
func newKgo(t *testing.T, brokers string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// endOffsets returns each partition's end offset (its high watermark). Like any client, it retries
// retriable errors: right after a start, a partition has no leader until its election is done (and
// /readyz answers 200 before that). kadm finds leaders through kgo's metadata, which kgo keeps for
// MetadataMinAge (5s by default) before asking again: a short one keeps that wait short.
func endOffsets(t *testing.T, brokers, topic string) map[int32]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	adm := kadm.NewClient(newKgo(t, brokers, kgo.MetadataMinAge(100*time.Millisecond)))
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for start, retries := time.Now(), 0; ; {
		listed, err := adm.ListEndOffsets(ctx, topic)
		if err == nil {
			err = listed.Error()
		}
		if err == nil {
			ends := map[int32]int64{}
			listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
			if len(ends) == 0 {
				t.Fatalf("topic %s has no partitions", topic)
			}
			return ends
		}
		if !kerr.IsRetriable(err) || ctx.Err() != nil {
			t.Fatalf("list end offsets of %s (after %v): %v", topic, time.Since(start), err)
		}
		if retries++; retries == 1 || retries%20 == 0 {
			t.Logf("list end offsets of %s: %v; retrying", topic, err)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// readAll reads every partition of topic from offset 0 to its current end offset with franz-go.
func readAll(t *testing.T, brokers, topic string) []record {
	t.Helper()
	ends := endOffsets(t, brokers, topic)
	starts := map[int32]kgo.Offset{}
	for p := range ends {
		starts[p] = kgo.NewOffset().At(0)
	}
	cl := newKgo(t, brokers, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchMaxWait(500*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	next := map[int32]int64{}
	var recs []record
	for !reached(next, ends) {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: at %v of end offsets %v after %v", topic, next, ends, readTimeout)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s[%d]: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			recs = append(recs, record{partition: r.Partition, offset: r.Offset, key: string(r.Key),
				value: string(r.Value), codec: r.Attrs.CompressionType()})
			next[r.Partition] = r.Offset + 1
		})
	}
	return recs
}

func reached(next, ends map[int32]int64) bool {
	for p, end := range ends {
		if next[p] < end {
			return false
		}
	}
	return true
}

// checkLog checks that recs hold each value of want exactly once and nothing else, and that each
// partition's offsets run 0, 1, 2, ... without a gap or a repeat.
func checkLog(t *testing.T, recs []record, want []string) {
	t.Helper()
	checkOffsets(t, recs, nil)
	seen := make(map[string]int, len(recs))
	for _, r := range recs {
		seen[r.value]++
	}
	var missing, doubled []string
	for _, v := range want {
		switch seen[v] {
		case 0:
			missing = append(missing, v)
		case 1:
		default:
			doubled = append(doubled, fmt.Sprintf("%s×%d", v, seen[v]))
		}
		delete(seen, v)
	}
	if len(missing)+len(doubled)+len(seen) > 0 {
		t.Errorf("read %d records, want %d: %d missing %s, %d more than once %s, %d unexpected %s",
			len(recs), len(want), len(missing), sample(missing), len(doubled), sample(doubled),
			len(seen), sample(slices.Sorted(maps.Keys(seen))))
	}
}

// checkOffsets checks that each partition's offsets are dense: from[p] (0 when absent), from[p]+1, ...
func checkOffsets(t *testing.T, recs []record, from map[int32]int64) {
	t.Helper()
	byPartition := map[int32][]int64{}
	for _, r := range recs {
		byPartition[r.partition] = append(byPartition[r.partition], r.offset)
	}
	for p, offs := range byPartition {
		slices.Sort(offs)
		for i, o := range offs {
			if want := from[p] + int64(i); o != want {
				t.Errorf("partition %d: offsets not dense: the %d-th is %d, want %d (first %d, last %d, %d records)",
					p, i, o, want, offs[0], offs[len(offs)-1], len(offs))
				break
			}
		}
	}
}

// checkCodec checks that the records were read from batches compressed with codec: the agent stores
// and serves a producer's batches verbatim. librdkafka and franz-go send a batch uncompressed when
// compressing does not make it smaller (a batch of one short record); with skipsSmall, batches without
// compression are accepted as long as at least one batch has codec. It reports whether all was well.
func checkCodec(t *testing.T, recs []record, codec string, skipsSmall bool) bool {
	t.Helper()
	want := uint8(slices.Index(codecs, codec))
	compressed := 0
	for _, r := range recs {
		switch {
		case r.codec == want:
			compressed++
		case r.codec == 0 && skipsSmall:
		default:
			t.Errorf("%d[%d] came in a batch with codec %d, want %d (%s)", r.partition, r.offset, r.codec, want, codec)
			return false
		}
	}
	if compressed == 0 && len(recs) > 0 {
		t.Errorf("none of %d records came in a batch with codec %d (%s)", len(recs), want, codec)
		return false
	}
	return true
}

// sample shows at most five items of a list.
func sample(xs []string) string {
	if len(xs) > 5 {
		return fmt.Sprint(xs[:5]) + "…"
	}
	return fmt.Sprint(xs)
}
