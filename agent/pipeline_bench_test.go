package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// Benchmarks of the agent's hot paths, without the network and without etcd's or S3's latency:
//
//	go test ./agent -run '^$' -bench 'ParseProduceBatch|ProducePipeline|PatchBatches|FetchCached' -benchmem
//
// e2e/bench measures the whole system; docs/BENCHMARKS.md has both.

// benchBatch builds a v2 batch of n records with size-byte random values, as a non-idempotent
// producer sends it.
func benchBatch(n, size int) []byte {
	r := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: int32(n - 1), FirstTimestamp: 1000, MaxTimestamp: 1000,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(n)}
	var recs []byte
	val := make([]byte, size)
	for i := range n {
		for j := range val {
			val[j] = byte(r.Uint32())
		}
		rec := kmsg.Record{OffsetDelta: int32(i), Value: val}
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		recs = rec.AppendTo(recs)
	}
	b.Records = recs
	raw := b.AppendTo(nil)
	return kwiretest.Seal(raw)
}

func BenchmarkParseProduceBatch(b *testing.B) {
	batch := benchBatch(16, 1024)
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if _, err := kwire.ParseProduceBatch(batch, DefaultMaxDecompressedBatchBytes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPatchBatches is the fetch path's one copy: a 1 MiB extent of 64 batches of 16 1 KiB
// records, patched with its offsets into a response buffer.
func BenchmarkPatchBatches(b *testing.B) {
	var src []byte
	for range 64 {
		src = append(src, benchBatch(16, 1024)...)
	}
	dst := make([]byte, 0, len(src))
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		out, _, err := kwire.PatchBatches(dst[:0], src, 1000, 3, 0)
		if err != nil || len(out) != len(src) {
			b.Fatal(err)
		}
	}
}

// discardStore keeps nothing and reads nothing: the produce benchmark measures the agent, not a store.
type discardStore struct{ segstore.Store }

func (discardStore) Put(context.Context, string, ...[]byte) error { return nil }
func (discardStore) Check(context.Context) error                  { return nil }

// fakeCommits answers every commit as committed without going to etcd.
type fakeCommits struct{ session }

func (fakeCommits) Commit(_ context.Context, commits []coord.Commit) []error {
	return make([]error, len(commits))
}

// BenchmarkProducePipeline drives decoded produce requests (each partition one batch of 16 records
// of 1 KiB) through the whole write path: validation and parsing of each batch, buffering, one
// segment object per flush (the copy and CRC of every byte), a Put to a store that discards it,
// sequencing, a commit answered at once instead of by etcd, and the response. 32 requests are in
// flight, so that flushes are full (4 MiB) rather than timed.
func BenchmarkProducePipeline(b *testing.B) {
	for _, partitions := range []int32{8, 1024} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			tc := newTestCluster(b)
			tc.store = segstore.NewFaulty(discardStore{})
			a := tc.newAgent("bench")
			a.wrapSession = func(s session) session { return fakeCommits{s} }
			ctx := testCtx(b)
			if err := a.Start(ctx); err != nil {
				b.Fatal(err)
			}
			createTopic(b, kgoClient(b, nil, a), "p", partitions, nil)
			awaitLeading(b, a, "p", partitions)
			// A request carries 128 KiB, over as many partitions as it takes.
			batch := benchBatch(16, 1024)
			req := kmsg.NewPtrProduceRequest()
			req.Acks, req.TimeoutMillis = -1, 30_000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "p"
			per := max(1, min(int(partitions), 8))
			for p := range per {
				rp := kmsg.NewProduceRequestTopicPartition()
				rp.Partition, rp.Records = int32(p), batch
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
			b.SetBytes(int64(per * len(batch)))
			b.ReportAllocs()
			sem := make(chan struct{}, 32)
			var wg sync.WaitGroup
			var failed error
			var mu sync.Mutex
			next := int32(0)
			for b.Loop() {
				sem <- struct{}{}
				for i := range req.Topics[0].Partitions { // spread requests over every partition
					req.Topics[0].Partitions[i].Partition = next % partitions
					next++
				}
				answer := a.handleProduce(ctx, client{}, req)
				wg.Go(func() {
					defer func() { <-sem }()
					if err := produceErr(answer()); err != nil {
						mu.Lock()
						failed = err
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if failed != nil {
				b.Fatal(failed)
			}
		})
	}
}

func produceErr(r kmsg.Response) error {
	for _, t := range r.(*kmsg.ProduceResponse).Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return fmt.Errorf("partition %d: error code %d", p.Partition, p.ErrorCode)
			}
		}
	}
	return nil
}

// awaitLeading waits until a leads every partition of topic.
func awaitLeading(b testing.TB, a *Agent, topic string, partitions int32) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		t, ok := a.cache.Topic(topic)
		led := int32(0)
		for p := range partitions {
			if ok && a.lead.leading(coord.TP{Topic: t.ID, Partition: p}) != nil {
				led++
			}
		}
		if led == partitions {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d partitions led after 30s", topic, led, partitions)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// BenchmarkFetchCached serves fetches of 8 partitions from extents in the agent's cache: the index
// lookup, the cache, patching each batch's offsets into the response. 8 MiB of 1 KiB records are
// produced first, then read once to fill the cache; each op is one fetch of up to 1 MiB per
// partition from the start.
func BenchmarkFetchCached(b *testing.B) {
	tc := newTestCluster(b)
	a := tc.agent("fetch", func(c *Config) { c.FlushInterval = 20 * time.Millisecond })
	ctx := testCtx(b)
	cl := kgoClient(b, []kgo.Opt{kgo.DefaultProduceTopic("f"), kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, a)
	createTopic(b, cl, "f", 8, nil)
	val := make([]byte, 1024)
	var wg sync.WaitGroup
	var perr error
	var mu sync.Mutex
	for range 8192 {
		wg.Add(1)
		cl.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				mu.Lock()
				perr = errors.Join(perr, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if perr != nil {
		b.Fatal(perr)
	}
	req := fetchAllReq("f", 8)
	_, n, _ := a.fillFetch(ctx, req, "") // fills the cache
	if n == 0 {
		b.Fatal("nothing to fetch")
	}
	b.SetBytes(n)
	b.ReportAllocs()
	var buf []byte
	for b.Loop() {
		resp, got, _ := a.fillFetch(ctx, req, "")
		if got != n {
			b.Fatalf("fetched %d bytes, want %d (%v)", got, n, resp.Topics[0].Partitions[0].ErrorCode)
		}
		// As a connection's writer does: encode the response, give its record buffers back.
		buf = kwire.AppendResponse(buf[:0], 1, resp)
		kwire.ReleaseRecords(resp)
	}
}
