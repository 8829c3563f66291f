package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceSpec is one produce workload.
type produceSpec struct {
	size       int // record value bytes
	partitions int32
	producers  int // franz-go clients, each with its own connections
	codec      string
}

func (s produceSpec) String() string {
	return fmt.Sprintf("%s × %dp × %d prod × %s", sizeString(s.size), s.partitions, s.producers, s.codec)
}

func sizeString(size int) string {
	if size%1024 == 0 {
		return fmt.Sprintf("%d KiB", size/1024)
	}
	return fmt.Sprintf("%d B", size)
}

var codecs = map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "zstd": kgo.ZstdCompression(),
	"lz4": kgo.Lz4Compression(), "snappy": kgo.SnappyCompression(), "gzip": kgo.GzipCompression()}

// randomPool holds incompressible bytes; record values are slices of it at random offsets, so that
// compression (zstd) does real work and gains nothing, as with encrypted or already compressed data.
var randomPool = func() []byte {
	b := make([]byte, 8<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+8 <= len(b); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}()

// newClient makes a franz-go client whose goroutines carry the client label. Producers use the same
// settings against every target: acks=all and idempotence (franz-go's defaults), no linger,
// round-robin over the partitions (every produce request carries batches for many partitions, the
// case that separates per-flush from per-partition costs), 32 MiB of buffer per client.
func newClient(ctx context.Context, target string, opts ...kgo.Opt) (*kgo.Client, error) {
	var cl *kgo.Client
	var err error
	opts = append(opts, targetClientOpts(target)...) // a secured target's TLS and SASL
	withLabels(ctx, compClient, target, func(context.Context) { cl, err = kgo.NewClient(opts...) })
	return cl, err
}

// producerLinger is --linger: 0 by default, as franz-go's own benchmarks run.
var producerLinger time.Duration

func producerOpts(brokers []string, topic, codec string) []kgo.Opt {
	return []kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(producerLinger),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerBatchCompression(codecs[codec]),
		kgo.MaxBufferedRecords(1 << 18), kgo.MaxBufferedBytes(32 << 20), kgo.ProduceRequestTimeout(30 * time.Second)}
}

var topicSeq atomic.Int64

// createTopic creates a topic and waits until every partition has a leader that answers a produce:
// StreamHouse's agents campaign for new partitions after the create returns.
func createTopic(ctx context.Context, t target, partitions int32) (string, error) {
	topic := fmt.Sprintf("bench-%d", topicSeq.Add(1))
	cl, err := newClient(ctx, t.Name(), kgo.SeedBrokers(t.Brokers()...))
	if err != nil {
		return "", err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		return "", fmt.Errorf("create %s: %w", topic, err)
	}
	return topic, awaitLeaders(ctx, t, topic, partitions)
}

// awaitLeaders waits until every partition of topic has a leader.
func awaitLeaders(ctx context.Context, t target, topic string, partitions int32) error {
	// franz-go answers a Metadata request from its cache within MetadataMinAge (5 s by default): the
	// polls would see the first answer, from before the agents led the partitions, for 5 s.
	cl, err := newClient(ctx, t.Name(), kgo.SeedBrokers(t.Brokers()...), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if td, ok := md.Topics[topic]; ok && td.Err == nil && int32(len(td.Partitions)) == partitions {
				led := 0
				for _, p := range td.Partitions {
					if p.Err == nil && p.Leader >= 0 {
						led++
					}
				}
				if int32(led) == partitions {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %w after 2 minutes", topic, errNoLeaders)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func deleteTopic(ctx context.Context, t target, topic string) {
	cl, err := newClient(ctx, t.Name(), kgo.SeedBrokers(t.Brokers()...))
	if err != nil {
		return
	}
	defer cl.Close()
	_, _ = kadm.NewClient(cl).DeleteTopics(ctx, topic)
}

// producers drive closed-loop produce: each client sends as fast as it accepts records (it blocks
// once its buffer is full) and counts acknowledged records and bytes.
type producers struct {
	clients      []*kgo.Client
	records      atomic.Int64
	bytes        atomic.Int64
	failed       atomic.Int64
	firstErr     atomic.Value
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	size, nextID int
}

func startProducers(ctx context.Context, t target, topic string, spec produceSpec) (*producers, error) {
	p := &producers{size: spec.size}
	for range spec.producers {
		cl, err := newClient(ctx, t.Name(), producerOpts(t.Brokers(), topic, spec.codec)...)
		if err != nil {
			p.close()
			return nil, err
		}
		p.clients = append(p.clients, cl)
	}
	pctx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
	for i, cl := range p.clients {
		p.wg.Go(func() { p.loop(pctx, cl, uint64(i)) })
	}
	return p, nil
}

func (p *producers) loop(ctx context.Context, cl *kgo.Client, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 99))
	promise := func(rec *kgo.Record, err error) {
		if err != nil {
			if ctx.Err() == nil {
				p.failed.Add(1)
				p.firstErr.CompareAndSwap(nil, err)
			}
			return
		}
		p.records.Add(1)
		p.bytes.Add(int64(len(rec.Value)))
	}
	for ctx.Err() == nil {
		off := r.IntN(len(randomPool) - p.size)
		cl.Produce(ctx, &kgo.Record{Value: randomPool[off : off+p.size]}, promise)
	}
}

// stop ends the loops and waits (bounded) for what is buffered to be answered.
func (p *producers) stop(ctx context.Context) {
	p.cancel()
	p.wg.Wait()
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, cl := range p.clients {
		_ = cl.Flush(fctx)
	}
	p.close()
}

// abandon ends the loops and closes the clients without waiting for what they buffer (it fails): the
// measuring window is over, and draining 32 MiB per client would only lengthen the suite. Requests
// already sent are given a moment to be answered, so that they do not weigh on the next run.
func (p *producers) abandon() {
	p.cancel()
	p.wg.Wait()
	p.close()
	time.Sleep(300 * time.Millisecond)
}

func (p *producers) close() {
	for _, cl := range p.clients {
		cl.Close()
	}
}

func (p *producers) err() error {
	if e, ok := p.firstErr.Load().(error); ok {
		return e
	}
	return nil
}

// counters is a snapshot of acknowledged records and bytes.
type counters struct{ records, bytes int64 }

func (p *producers) snapshot() counters { return counters{p.records.Load(), p.bytes.Load()} }

// percentile of sorted durations, in milliseconds.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return nan
	}
	i := min(len(sorted)-1, int(float64(len(sorted))*q))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// latencies is a concurrent collection of durations.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) sorted() []time.Duration { return l.sortedFrom(0) }

// mark is where the next duration will go: sortedFrom(mark) returns those added since.
func (l *latencies) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

func (l *latencies) sortedFrom(i int) []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.d[min(i, len(l.d)):])
	slices.Sort(out)
	return out
}

var errIncomplete = errors.New("not every record came back")
