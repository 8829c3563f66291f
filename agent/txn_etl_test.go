package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Two exactly-once stages chained as franz-go's TestTxnEtl runs them (in -> mid -> out):
// GroupTransactSession members joining and leaving mid-stream (rebalances abort transactions in
// flight) move every record through once; read_committed consumers see each exactly once.
//
// It once failed about one run in four (franz-go's TestTxnEtl: "consumed too much"): the second stage
// read, in committed transactions, one transaction of mid that was later aborted. The leader's view
// took its own commits without their producer batches until the watch brought them, so a
// read_committed fetch woken by the commit saw no open transaction and served it above the last
// stable offset (coord.TestApplyOpensTransaction is the exact case).
func TestTxnEtlRebalancing(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	admin := kgoClient(t, nil, a)
	createTopic(t, admin, "etlr-in", 4, nil)
	createTopic(t, admin, "etlr-mid", 4, nil)
	createTopic(t, admin, "etlr-out", 4, nil)
	ctx := testCtx(t)
	const n = 2000
	var in []*kgo.Record
	for i := range n {
		in = append(in, &kgo.Record{Topic: "etlr-in", Partition: int32(i % 4), Key: fmt.Appendf(nil, "%d", i)})
	}
	if err := kgoClient(t, []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, a).ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var seenMu sync.Mutex
	seenPO := map[string]bool{}
	member := func(id, from, to string, done *atomic.Int64, txns int) {
		sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(a.KafkaAddr()), kgo.MetadataMinAge(50*time.Millisecond),
			kgo.TransactionalID(id), kgo.ConsumerGroup("etlr-"+from), kgo.ConsumeTopics(from),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DefaultProduceTopic(to),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(2000), kgo.HeartbeatInterval(100*time.Millisecond))
		if err != nil {
			t.Error(err)
			return
		}
		defer sess.Close()
		for i := 0; txns < 0 || i < txns; i++ {
			if done.Load() >= n || ctx.Err() != nil {
				return
			}
			pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			fs := sess.PollFetches(pctx)
			cancel()
			if err := sess.Begin(); err != nil {
				t.Error(err)
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				sess.Produce(ctx, &kgo.Record{Key: r.Key}, nil)
			})
			committed, err := sess.End(ctx, kgo.TryCommit)
			if err != nil {
				t.Error(err)
				return
			}
			if committed {
				done.Add(int64(len(fs.Records())))
				seenMu.Lock()
				fs.EachRecord(func(r *kgo.Record) {
					po := fmt.Sprintf("%s/%d/%d", r.Topic, r.Partition, r.Offset)
					if seenPO[po] {
						t.Errorf("%s: %s consumed again in a committed transaction", id, po)
					}
					seenPO[po] = true
				})
				seenMu.Unlock()
			}
		}
	}
	var wg sync.WaitGroup
	var done1, done2 atomic.Int64
	for i, txns := range []int{-1, 5, 10, -1} {
		wg.Go(func() { member(fmt.Sprintf("etlr-1-%d", i), "etlr-in", "etlr-mid", &done1, txns) })
		wg.Go(func() { member(fmt.Sprintf("etlr-2-%d", i), "etlr-mid", "etlr-out", &done2, txns) })
	}
	wg.Wait()
	midCl := kgoClient(t, []kgo.Opt{kgo.ConsumeTopics("etlr-mid"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())}, a)
	midKeys := map[string]int{}
	for range 10 {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		midCl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { midKeys[string(r.Key)]++ })
		cancel()
	}
	dups := 0
	for _, c := range midKeys {
		dups += c - 1
	}
	t.Logf("mid read_committed: %d keys, %d duplicates", len(midKeys), dups)
	outCl := kgoClient(t, []kgo.Opt{kgo.ConsumeTopics("etlr-out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())}, a)
	outKeys, outRecs := map[string]int{}, 0
	for range 10 {
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		outCl.PollFetches(pctx).EachRecord(func(r *kgo.Record) { outKeys[string(r.Key)]++; outRecs++ })
		cancel()
	}
	t.Logf("out read_committed: %d keys, %d records; stage 2 consumed %d distinct offsets", len(outKeys), outRecs, len(seenPO))
	if got1, got2 := done1.Load(), done2.Load(); got1 != n || got2 != n {
		t.Fatalf("transformed %d and %d records in committed transactions, want %d", got1, got2, n)
	}
	seen := map[string]int{}
	for _, r := range consumeAll(t, []*Agent{a}, "etlr-out", n, kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		seen[string(r.Key)]++
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("key %s read %d times", k, c)
		}
	}
	// Nothing past the n records: a read_committed consumer polling on finds no more.
	cl := kgoClient(t, []kgo.Opt{kgo.ConsumeTopics("etlr-out"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())}, a)
	total := 0
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		total += len(cl.PollFetches(pctx).Records())
		cancel()
	}
	if total != n {
		t.Fatalf("read_committed read %d records, want %d", total, n)
	}
}
