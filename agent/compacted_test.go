package agent

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
	"github.com/streamhouse/streamhouse/coord"
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
	waitCleaned(t, a, tp)
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

// waitCleaned waits until tp is all segments, each wholly clean, with no tombstone or marker left to
// go past its horizon.
func waitCleaned(t *testing.T, a *Agent, tp coord.TP) {
	t.Helper()
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
}

// consumeCompacted reads topic from the start up to hwm and returns each key's value; it fails on a key
// read twice, a tombstone read, or an offset that does not increase.
func consumeCompacted(t *testing.T, a *Agent, topic string, hwm int64, opts ...kgo.Opt) map[string]string {
	t.Helper()
	cl := kgoClient(t, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...), a)
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

// TestCompactedTopicIdempotentProducer writes ten batches of one idempotent producer over the same four
// keys to a compacted topic and waits for the cleaner, which removes every record but the last batch's:
// the producer's last batch sent again is still answered as the duplicate it is (its original offset,
// nothing written), its next batch is written, and a sequence gap is still refused.
func TestCompactedTopicIdempotentProducer(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", fastMaintenance)
	cl := kgoClient(t, nil, a)
	createTopic(t, cl, "idem", 1, map[string]*string{"cleanup.policy": sp("compact"), "max.compaction.lag.ms": sp("500"),
		"min.cleanable.dirty.ratio": sp("0.99")})
	c := dialRaw(t, a)
	pid, epoch := c.initProducerID()
	batch := func(seq int32) []byte {
		return kwiretest.Build(kwiretest.Spec{LastDelta: 3, NumRecords: 4, Count: true, FirstTS: 1000, MaxTS: 1003, Pid: pid,
			Epoch: epoch, Seq: seq}, keyedRecords(4))
	}
	for i := range int32(10) {
		if r := c.produceOne("idem", 0, batch(4*i)); r.ErrorCode != 0 || r.BaseOffset != int64(4*i) {
			t.Fatalf("batch %d: error %d at %d", i, r.ErrorCode, r.BaseOffset)
		}
	}
	tp := topicTP(t, a, "idem", 0)
	waitFor(t, "the partition cleaned to its end", func() bool {
		pi, _ := a.cache.PartitionIndex(tp)
		n := len(pi.Segments)
		return len(pi.Tail) == 0 && n > 0 && pi.Segments[n-1].Segment.CleanTo == 40
	})
	if got := consumeCompacted(t, a, "idem", 40); len(got) != 4 {
		t.Fatalf("read %d keys, want 4", len(got))
	}
	if r := c.produceOne("idem", 0, batch(36)); r.ErrorCode != 0 || r.BaseOffset != 36 {
		t.Errorf("the last batch again: error %d at %d, want the duplicate's offset 36", r.ErrorCode, r.BaseOffset)
	}
	if hwm := a.cache.HighWatermark(tp); hwm != 40 {
		t.Errorf("high watermark %d after a duplicate, want 40", hwm)
	}
	if r := c.produceOne("idem", 0, batch(40)); r.ErrorCode != 0 || r.BaseOffset != 40 {
		t.Errorf("the next batch: error %d at %d, want 40", r.ErrorCode, r.BaseOffset)
	}
	if r := c.produceOne("idem", 0, batch(50)); r.ErrorCode != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("a sequence gap: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", r.ErrorCode)
	}
}

// TestCompactedTopicTransactions writes a compacted topic through a transactional producer, committing
// most transactions and aborting some, and waits for the cleaner: a read_committed consumer and a
// read_uncommitted one from the beginning each see every key once, with its value of the last committed
// transaction, and no value of an aborted one (Kafka's cleaner removes aborted records and treats
// committed ones as any other); offsets never change.
func TestCompactedTopicTransactions(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", fastMaintenance, func(c *Config) { c.Transactions = true })
	ctx := testCtx(t)
	createTopic(t, kgoClient(t, nil, a), "txkv", 1, map[string]*string{"cleanup.policy": sp("compact"),
		"max.compaction.lag.ms": sp("1000"), "delete.retention.ms": sp("0"), "min.cleanable.dirty.ratio": sp("0.99")})
	id := "tx-compacted"
	waitTxnCoordinator(t, a, id)
	cl := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id)}, a)
	const keys, rounds = 50, 9
	want := map[string]string{}
	for round := range rounds {
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		commit := round%3 != 1 // rounds 1, 4 and 7 abort; the last commits
		var recs []*kgo.Record
		for k := range keys {
			key := fmt.Sprintf("key-%02d", k)
			recs = append(recs, &kgo.Record{Topic: "txkv", Key: []byte(key), Value: fmt.Appendf(nil, "%s@%d", key, round)})
			if commit {
				want[key] = fmt.Sprintf("%s@%d", key, round)
			}
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := cl.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
			t.Fatal(err)
		}
	}
	tp := topicTP(t, a, "txkv", 0)
	waitCleaned(t, a, tp)
	hwm := a.cache.HighWatermark(tp)
	if hwm != keys*rounds+rounds {
		t.Fatalf("high watermark %d, want %d (records and one marker per transaction): offsets never change", hwm, keys*rounds+rounds)
	}
	for _, isolation := range []kgo.IsolationLevel{kgo.ReadCommitted(), kgo.ReadUncommitted()} {
		got := consumeCompacted(t, a, "txkv", hwm-1, kgo.FetchIsolationLevel(isolation))
		if len(got) != len(want) {
			t.Errorf("%v: %d keys read, want %d", isolation, len(got), len(want))
		}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%v: key %s: read %q, want %q", isolation, k, got[k], v)
			}
		}
	}
}
