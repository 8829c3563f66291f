package agent

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCompactedTopicEndToEnd overwrites 200 keys ten times through franz-go, deletes a tenth of them,
// and waits for max.compaction.lag.ms (one second) to pass and the cleaner to run: a consumer from the
// beginning then sees each live key once, with its latest value, no deleted key, and offsets that only
// increase and end at the high watermark.
func TestCompactedTopicEndToEnd(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", fastMaintenance)
	cl := kgoClient(t, nil, a)
	ctx := testCtx(t)
	createTopic(t, cl, "kv", 1, map[string]*string{"cleanup.policy": sp("compact"), "max.compaction.lag.ms": sp("1000"),
		"delete.retention.ms": sp("0"), "min.cleanable.dirty.ratio": sp("0.99")})
	const keys, rounds = 200, 10
	want := map[string]string{}
	for round := range rounds {
		var recs []*kgo.Record
		for k := range keys {
			key := fmt.Sprintf("key-%03d", k)
			r := &kgo.Record{Topic: "kv", Key: []byte(key), Value: []byte(fmt.Sprintf("%s@%d", key, round))}
			if round == rounds-1 && k%10 == 0 {
				r.Value = nil // a tombstone
				delete(want, key)
			} else {
				want[key] = string(r.Value)
			}
			recs = append(recs, r)
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	tp := topicTP(t, a, "kv", 0)
	waitFor(t, "the partition cleaned, its tombstones gone", func() bool {
		pi, _ := a.cache.PartitionIndex(tp)
		if len(pi.Tail) > 0 || len(pi.Segments) == 0 {
			return false
		}
		for _, s := range pi.Segments {
			if s.Segment.CleanTo <= s.LastOffset || s.Segment.Tombstones > 0 {
				return false
			}
		}
		return true
	})
	hwm := a.cache.HighWatermark(tp)
	if hwm != keys*rounds {
		t.Fatalf("high watermark %d, want %d: offsets never change", hwm, keys*rounds)
	}
	got := consumeCompacted(t, a, "kv", hwm)
	if len(got) != len(want) {
		t.Errorf("%d keys read, want %d live", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("key %s: read %q, want %q", k, got[k], v)
		}
	}
}

// consumeCompacted reads topic from the start up to hwm and returns each key's value; it fails on a key
// read twice, a tombstone read, or an offset that does not increase.
func consumeCompacted(t *testing.T, a *Agent, topic string, hwm int64) map[string]string {
	t.Helper()
	cl := kgoClient(t, []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, a)
	ctx := testCtx(t)
	out := map[string]string{}
	last := int64(-1)
	for last < hwm-1 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read up to offset %d of %d before timing out", last, hwm)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("fetch errors: %v", errs)
		}
		for _, r := range fs.Records() {
			if r.Offset <= last {
				t.Fatalf("offset %d after %d", r.Offset, last)
			}
			last = r.Offset
			if _, dup := out[string(r.Key)]; dup {
				t.Fatalf("key %s read twice (again at %d)", r.Key, r.Offset)
			}
			if r.Value == nil {
				t.Fatalf("tombstone of %s read at %d past delete.retention.ms", r.Key, r.Offset)
			}
			out[string(r.Key)] = string(r.Value)
		}
	}
	return out
}
