package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var nan = math.NaN()

// Series read from the agents' registries.
const (
	seriesPuts    = `streamhouse_s3_requests_total{op="put",result="ok"}`
	seriesGets    = `streamhouse_s3_requests_total{op="get_range",result="ok"}`
	seriesTxnHist = `streamhouse_etcd_txn_duration_seconds`
	seriesWrite   = `streamhouse_agent_write_latency_seconds`
	seriesUpload  = `streamhouse_s3_bytes_total{direction="upload",op="put"}`
)

var txnResults = []string{"ok", "fenced", "error"}

func snapAgents(t target) []series {
	var out []series
	for _, a := range t.Agents() {
		out = append(out, gather(a.reg))
	}
	return out
}

// perAgent is, over the agents, the highest rate of a counter between two snapshots.
func perAgent(before, after []series, secs float64, keys ...string) float64 {
	if len(after) == 0 {
		return nan
	}
	top := 0.0
	for i := range after {
		n := 0.0
		for _, k := range keys {
			n += delta(before[i], after[i], k)
		}
		top = max(top, n/secs)
	}
	return top
}

func txnKeys() []string {
	var keys []string
	for _, r := range txnResults {
		keys = append(keys, `streamhouse_etcd_txns_total{result="`+r+`"}`)
	}
	return keys
}

// throughputResult is one closed-loop produce run.
type throughputResult struct {
	spec           produceSpec
	mibps, recps   float64
	puts, txns     float64 // per second, of the busiest agent
	gets           float64
	putP50, putMiB float64            // ms, and MiB per PUT
	cpuBy          map[string]float64 // CPU seconds by component (this target's labels) and "unlabelled"
	brokerCPU      float64            // CPU seconds of the broker (pprof labels) during the window
	processCPU     float64            // CPU seconds of the whole process during the window
	gib            float64            // GiB acknowledged during the window
	failed         int64
	firstErr       error
	flushInterval  time.Duration
}

func (r throughputResult) brokerCPUPerGiB() float64  { return r.brokerCPU / r.gib }
func (r throughputResult) processCPUPerGiB() float64 { return r.processCPU / r.gib }

// runThroughput produces closed loop for warm, then measures over window. run, from 1, numbers the
// profile of one of several runs of spec (--repeat); 0 for the only one.
func runThroughput(ctx context.Context, t target, spec produceSpec, warm, window time.Duration, profileDir string, run int) (throughputResult, error) {
	r := throughputResult{spec: spec}
	topic, err := createTopic(ctx, t, spec.partitions)
	if err != nil {
		return r, err
	}
	defer deleteTopic(ctx, t, topic)
	p, err := startProducers(ctx, t, topic, spec)
	if err != nil {
		return r, err
	}
	time.Sleep(warm)
	c0, m0, marks, cpu, t0 := p.snapshot(), snapAgents(t), markPuts(t), startCPU(), time.Now()
	time.Sleep(window)
	c1, m1, u := p.snapshot(), snapAgents(t), cpu.stop()
	var puts []time.Duration
	for i, a := range t.Agents() {
		puts = append(puts, a.puts.sortedFrom(marks[i])...)
	}
	slices.Sort(puts)
	r.putP50 = percentile(puts, 0.5)
	var upload float64
	for i := range m1 {
		upload += delta(m0[i], m1[i], seriesUpload)
	}
	r.putMiB = upload / (1 << 20) / float64(len(puts))
	r.cpuBy = map[string]float64{"unlabelled": u.byLabel["unlabelled"]}
	for _, comp := range []string{compBroker, compEtcd, compS3, compClient} {
		r.cpuBy[comp] = u.component(comp, t.Name())
	}
	secs := time.Since(t0).Seconds()
	p.abandon()
	r.mibps = float64(c1.bytes-c0.bytes) / (1 << 20) / secs
	r.recps = float64(c1.records-c0.records) / secs
	r.gib = float64(c1.bytes-c0.bytes) / (1 << 30)
	r.puts = perAgent(m0, m1, secs, seriesPuts)
	r.gets = perAgent(m0, m1, secs, seriesGets)
	r.txns = perAgent(m0, m1, secs, txnKeys()...)
	r.brokerCPU, r.processCPU = u.component(compBroker, t.Name()), u.process
	r.failed, r.firstErr = p.failed.Load(), p.err()
	if ags := t.Agents(); len(ags) > 0 {
		r.flushInterval = ags[0].cfg.FlushInterval
	}
	name := strings.NewReplacer(" ", "", "×", "-").Replace(t.Name() + "-" + spec.String())
	if run > 0 {
		name += fmt.Sprintf("-run%d", run)
	}
	return r, writeProfile(profileDir, name, u.profile)
}

// latencyResult is one open-loop run at a fixed rate.
type latencyResult struct {
	rate           float64 // records/s offered
	partitions     int32
	p50, p99, p999 float64 // produce latency, ms, from each record's scheduled send time
	req50, req99   float64 // produce request round trip, ms: written by the client → answer read
	puts, txns     float64 // S3 PUTs/s and etcd Txns/s of the busiest agent at this rate
	e2e50, e2e99   float64 // produce → consume, ms
	putP50, txnP50 float64 // ms, during the run
	putP99         float64 // ms
	txnP99         float64 // ms
	writeP50       float64 // ms: a flush from sealed to committed (PUT, sequencing, Txn), in the agent
	writeP99       float64
	gets           float64 // S3 GETs/s of the busiest agent: what the tailing consumer cost
	flush          float64 // flush interval, ms
	sent, failed   int64
}

// floor is what a produce cannot beat: its flush interval, one PUT and one etcd Txn.
func (r latencyResult) floor() float64 { return r.flush + r.putP50 + r.txnP50 }

// requestTimes records the round trip of each produce request a client sends while on: from the
// request written to the connection to its answer read. Unlike a record's latency it leaves out the
// time a record waits in the client for a free request slot (franz-go keeps at most five produce
// requests in flight to a broker), so it is the broker's own latency as the client sees it.
type requestTimes struct {
	on  atomic.Bool
	rtt latencies
}

func (h *requestTimes) OnBrokerE2E(_ kgo.BrokerMetadata, key int16, e kgo.BrokerE2E) {
	if key == int16(kmsg.Produce) && h.on.Load() && e.Err() == nil {
		h.rtt.add(e.DurationE2E())
	}
}

// runLatency sends spec's records at a fixed rate (open loop: each record has a scheduled send time,
// and its latency counts from then, so that queueing in the client does not hide the broker's
// latency) while a consumer tails the topic. Records scheduled during warm are not measured.
func runLatency(ctx context.Context, t target, spec produceSpec, rate float64, warm, window time.Duration) (latencyResult, error) {
	r := latencyResult{rate: rate, partitions: spec.partitions, putP50: nan, txnP99: nan, writeP50: nan, writeP99: nan, putP99: nan, txnP50: nan, flush: nan, gets: nan}
	topic, err := createTopic(ctx, t, spec.partitions)
	if err != nil {
		return r, err
	}
	defer deleteTopic(ctx, t, topic)
	var reqs requestTimes
	prod, err := newClient(ctx, t.Name(), append(producerOpts(t.Brokers(), topic, spec.codec), kgo.WithHooks(&reqs))...)
	if err != nil {
		return r, err
	}
	defer prod.Close()
	cons, err := newClient(ctx, t.Name(), kgo.SeedBrokers(t.Brokers()...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return r, err
	}
	defer cons.Close()

	start := time.Now().Add(200 * time.Millisecond)
	from := start.Add(warm)
	total := int64(rate * (warm + window).Seconds())
	var prodLat, e2e latencies
	var failed atomic.Int64
	consumed := make(chan int64, 1)
	go func() { consumed <- consume(ctx, cons, total, window+30*time.Second, from, &e2e) }()

	var m0 []series
	var putMarks []int
	withLabels(ctx, compClient, t.Name(), func(ctx context.Context) {
		rng := rand.New(rand.NewPCG(3, 4))
		measuring := false
		for i := range total {
			due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
			if !measuring && !due.Before(from) {
				measuring, m0, putMarks = true, snapAgents(t), markPuts(t)
				reqs.on.Store(true)
			}
			if wait := time.Until(due); wait > 100*time.Microsecond {
				time.Sleep(wait)
			}
			val := make([]byte, spec.size)
			off := rng.IntN(len(randomPool) - spec.size)
			copy(val[8:], randomPool[off:])
			binary.BigEndian.PutUint64(val, uint64(due.UnixNano()))
			prod.Produce(ctx, &kgo.Record{Value: val}, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
					return
				}
				if !due.Before(from) {
					prodLat.add(time.Since(due))
				}
			})
		}
	})
	fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := prod.Flush(fctx); err != nil {
		return r, fmt.Errorf("flush: %w", err)
	}
	m1 := snapAgents(t)
	reqs.on.Store(false)
	got := <-consumed
	r.sent, r.failed = total, failed.Load()
	lat, e := prodLat.sorted(), e2e.sorted()
	r.p50, r.p99, r.p999 = percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 0.999)
	r.e2e50, r.e2e99 = percentile(e, 0.5), percentile(e, 0.99)
	rtt := reqs.rtt.sorted()
	r.req50, r.req99 = percentile(rtt, 0.5), percentile(rtt, 0.99)
	if ags := t.Agents(); len(ags) > 0 {
		r.flush = float64(ags[0].cfg.FlushInterval) / float64(time.Millisecond)
		var puts []time.Duration
		var txns, writes hist
		for i, a := range ags {
			puts = append(puts, a.puts.sortedFrom(putMarks[i])...)
			txns = txns.add(histDelta(m0[i], m1[i], seriesTxnHist))
			writes = writes.add(histDelta(m0[i], m1[i], seriesWrite))
		}
		slices.Sort(puts)
		r.putP50, r.putP99, r.txnP50 = percentile(puts, 0.5), percentile(puts, 0.99), txns.quantile(0.5)*1000
		r.txnP99, r.writeP50, r.writeP99 = txns.quantile(0.99)*1000, writes.quantile(0.5)*1000, writes.quantile(0.99)*1000
		secs := time.Since(from).Seconds()
		r.gets = perAgent(m0, m1, secs, seriesGets)
		r.puts = perAgent(m0, m1, secs, seriesPuts)
		r.txns = perAgent(m0, m1, secs, txnKeys()...)
	}
	if got < total-r.failed {
		return r, fmt.Errorf("%w: consumed %d of %d", errIncomplete, got, total-r.failed)
	}
	return r, nil
}

func markPuts(t target) []int {
	var out []int
	for _, a := range t.Agents() {
		out = append(out, a.puts.mark())
	}
	return out
}

// consume reads until it has want records or timeout passes, recording the end-to-end latency of the
// records scheduled from `from` on (their first 8 bytes are the scheduled send time). It returns how
// many it read.
func consume(ctx context.Context, cl *kgo.Client, want int64, timeout time.Duration, from time.Time, e2e *latencies) int64 {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var got int64
	for got < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		now := time.Now()
		fs.EachRecord(func(rec *kgo.Record) {
			got++
			if e2e != nil && len(rec.Value) >= 8 {
				if due := time.Unix(0, int64(binary.BigEndian.Uint64(rec.Value))); !due.Before(from) {
					e2e.add(now.Sub(due))
				}
			}
		})
	}
	return got
}

// consumeResult is reading back one produced data set, twice.
type consumeResult struct {
	mib                float64 // size of the data set
	passes             int     // reads of each kind
	cold, warm         float64 // MiB/s, the median of the reads
	gets, warmGets     float64 // S3 GETs/s of the busiest agent during the cold and the warm reads
	coldRange, warmRng [2]float64
}

// consumePasses is how many times each read is timed in a full suite (the short one times three): a
// read of 192 MiB takes a fraction of a second, which one GC cycle or a scheduling hiccup on two cores
// can swing by half.
const consumePasses = 5

// runConsume produces mib MiB of 1 KiB records to 8 partitions, then reads them all from the start
// with a new consumer each time: passes times cold (StreamHouse's agents are restarted first, so
// that their read caches hold nothing: every extent comes from S3), then passes times warm (from
// the cache). Each figure is the median of its passes.
func runConsume(ctx context.Context, t target, mib, passes int, log hclog.Logger, profileDir string) (consumeResult, error) {
	r := consumeResult{mib: float64(mib), passes: passes}
	spec := produceSpec{size: 1024, partitions: 8, producers: 1, codec: "none"}
	topic, err := createTopic(ctx, t, spec.partitions)
	if err != nil {
		return r, err
	}
	defer deleteTopic(ctx, t, topic)
	p, err := startProducers(ctx, t, topic, spec)
	if err != nil {
		return r, err
	}
	for p.snapshot().bytes < int64(mib)<<20 {
		time.Sleep(20 * time.Millisecond)
	}
	p.stop(ctx)
	want := p.snapshot().records
	var cold, warm, coldGets, warmGets []float64
	for pass := range 2 * passes {
		isCold := pass < passes
		if sh, ok := t.(*shCluster); ok && isCold {
			// The agents cached what they wrote or read: fresh ones read it from S3.
			if err := sh.restartAgents(ctx, log); err != nil {
				return r, err
			}
			if err := awaitLeaders(ctx, t, topic, spec.partitions); err != nil {
				return r, err
			}
		}
		m0 := snapAgents(t)
		cl, err := newClient(ctx, t.Name(), kgo.SeedBrokers(t.Brokers()...), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			return r, err
		}
		// The clock starts at the first records, so that connecting and looking up offsets do not count.
		first := consume(ctx, cl, 1, time.Minute, time.Time{}, nil)
		cpu, t0 := startCPU(), time.Now()
		got := first + consume(ctx, cl, want-first, 2*time.Minute, time.Time{}, nil)
		secs := time.Since(t0).Seconds()
		u := cpu.stop()
		cl.Close()
		if got < want {
			return r, fmt.Errorf("%w: read %d of %d", errIncomplete, got, want)
		}
		rate := float64(got-first) * float64(spec.size) / (1 << 20) / secs
		gets := perAgent(m0, snapAgents(t), secs, seriesGets)
		kind := "warm"
		if isCold {
			kind = "cold"
			cold, coldGets = append(cold, rate), append(coldGets, gets)
		} else {
			warm, warmGets = append(warm, rate), append(warmGets, gets)
		}
		if err := writeProfile(profileDir, fmt.Sprintf("%s-consume-%s-%d", t.Name(), kind, pass%passes), u.profile); err != nil {
			return r, err
		}
	}
	if _, ok := t.(*shCluster); !ok {
		// kfake reads from memory either way: its cold and warm passes are one read timed twice as
		// often, and the median of all of them is the steadier baseline for both ratios.
		all := append(slices.Clone(cold), warm...)
		cold, warm = all, all
	}
	r.cold, r.gets, r.coldRange = median(cold), median(coldGets), [2]float64{slices.Min(cold), slices.Max(cold)}
	r.warm, r.warmGets, r.warmRng = median(warm), median(warmGets), [2]float64{slices.Min(warm), slices.Max(warm)}
	return r, nil
}

// median is the middle value of v, or the mean of the middle two.
func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 0 {
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return v[len(v)/2]
}
