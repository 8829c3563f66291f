package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A compacted topic under a leader's kill -9 mid-clean: three agents clean a 3-partition topic whose
// 3,000 keys are overwritten four times and a tenth of them deleted, with max.compaction.lag.ms of
// 3 s, delete.retention.ms 0 and a key map small enough that a clean takes several passes. Every key is
// overwritten once more and the leader of partition 0 killed (-9) as it cleans that, then every key is
// overwritten again while it is down.
// Once the lag has passed and every partition is clean to its end with no tombstone left, a consumer
// from the beginning (franz-go, then kcat) sees each live key once, with its latest value, no deleted
// key, and offsets that only increase.
func TestCompactedTopicKill9(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0)
	flags := []string{"--maintenance-interval", "20ms", "--cleaner-memory", "16384"}
	for i, id := range threeAgents {
		c.start(t, id, fmt.Sprintf("z%d", i+1), "127.0.0.1:0", "127.0.0.1:0", flags...)
	}
	const topic, keys = "kv", 3000
	sh(t, c.brokers()[0], "", "topic", "create", "--partitions", "3", "--config", "cleanup.policy=compact",
		"--config", "max.compaction.lag.ms=3000", "--config", "delete.retention.ms=0",
		"--config", "min.cleanable.dirty.ratio=0.9", topic)
	c.waitBalanced(t, threeAgents...)
	cl := c.client(t, kgo.RecordRetries(100), kgo.ProducerLinger(5*time.Millisecond))
	want := map[string]string{}
	produce := func(round int) {
		t.Helper()
		var recs []*kgo.Record
		for k := range keys {
			key := fmt.Sprintf("key-%04d", k)
			if _, live := want[key]; round > 0 && !live && k%10 == 0 {
				continue // deleted for good
			}
			r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(fmt.Sprintf("%s@%d", key, round))}
			if round == 3 && k%10 == 0 {
				r.Value = nil
				delete(want, key)
			} else {
				want[key] = string(r.Value)
			}
			recs = append(recs, r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
		defer cancel()
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	for round := range 4 {
		produce(round)
	}
	// A clean of partition 0 takes several passes (a key map of 341 keys for 1,000); the first of the
	// cleans that round 4 brings, once its records are 3 s old, is followed by the others.
	victim := c.agents[c.status(t).leaders(topic)[topic+"/0"]]
	produce(4)
	waitCounter(t, victim, "streamhouse_cleaner_cleans_total", 1)
	fault := time.Now()
	victim.kill(t)
	t.Logf("killed %s (-9) as it cleaned", victim.id)
	produce(5)
	c.waitLed(t, fault, victim.id)
	c.restart(t, victim.id)
	c.waitBalanced(t, threeAgents...)

	st := c.waitStatus(t, "every partition of the compacted topic cleaned to its end", settleTimeout, func(st clusterStatus) string {
		for _, p := range st.Partitions {
			if p.Topic == topic && (p.Tail > 0 || p.CleanTo != p.NextOffset || p.Tombstones > 0) {
				return fmt.Sprintf("%s/%d: tail %d, clean to %d of %d, %d tombstones", p.Topic, p.Partition, p.Tail, p.CleanTo, p.NextOffset, p.Tombstones)
			}
		}
		return ""
	})
	ends := map[int32]int64{}
	for _, p := range st.Partitions {
		if p.Topic == topic {
			ends[p.Partition] = p.NextOffset
		}
	}
	checkCompacted(t, "franz-go", want, consumeCompacted(t, c, topic, ends))
	checkCompacted(t, "kcat", want, kcatConsume(t, needKcat(t), strings.Join(c.brokers(), ","), topic))
}

// consumeCompacted reads topic from the beginning until each partition's position reaches its end,
// with its keys (consumeFrom keeps only values).
func consumeCompacted(t *testing.T, c *cluster, topic string, ends map[int32]int64) []record {
	t.Helper()
	cl := c.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	var out []record
	next := map[int32]int64{}
	for {
		done := true
		for p, end := range ends {
			if next[p] < end-1 {
				done = false
			}
		}
		if done {
			return out
		}
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: not at the end offsets %v within %v: at %v", topic, ends, readTimeout, next)
		}
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, record{partition: r.Partition, offset: r.Offset, key: string(r.Key), value: string(r.Value)})
			next[r.Partition] = max(next[r.Partition], r.Offset)
		})
	}
}

// checkCompacted checks what a consumer read of a compacted topic: each live key once, with its latest
// value; no deleted key; offsets increasing per partition.
func checkCompacted(t *testing.T, who string, want map[string]string, got []record) {
	t.Helper()
	seen := map[string]bool{}
	last := map[int32]int64{}
	for _, r := range got {
		if o, ok := last[r.partition]; ok && r.offset <= o {
			t.Fatalf("%s: partition %d: offset %d after %d", who, r.partition, r.offset, o)
		}
		last[r.partition] = r.offset
		if seen[r.key] {
			t.Fatalf("%s: key %s read twice", who, r.key)
		}
		seen[r.key] = true
		if w, live := want[r.key]; !live || w != r.value {
			t.Fatalf("%s: key %s read with %q, want %q (live %v)", who, r.key, r.value, w, live)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("%s: %d keys read, want %d live", who, len(seen), len(want))
	}
}
