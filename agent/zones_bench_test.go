package agent

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/segstore"
)

// BenchmarkZoneFigures prints the figures of the zones work: the share of client record bytes that
// cross zones with and without zone hints, and the produce latency of forwarding (a producer in z2
// writing through its zone's agent to a partition led in z1) against producing to the leader directly.
//
//	go test ./agent -run '^$' -bench ZoneFigures -benchtime 1x
func BenchmarkZoneFigures(b *testing.B) {
	for range b.N {
		tc := newTestCluster(b)
		var agents []*Agent
		for z := 1; z <= 3; z++ {
			for i := 1; i <= 2; i++ {
				zone := fmt.Sprintf("z%d", z)
				agents = append(agents, tc.agent(fmt.Sprintf("%s-a%d", zone, i), func(c *Config) {
					c.AZ = zone
					c.FlushInterval = 20 * time.Millisecond
				}))
			}
		}
		createTopic(b, kgoClient(b, nil, agents...), "share", 6, nil)
		for _, hints := range []bool{false, true} {
			cross, total := crossZoneShare(b, agents, "share", hints)
			b.Logf("zone hints %-5v: %5.1f%% of %d client record bytes crossed zones", hints, 100*cross/total, int(total))
		}
		direct, forwarded := forwardingLatency(b, agents)
		b.Logf("produce latency to a z1 leader from z2, 20ms flush: direct p50 %v p99 %v; forwarded in-zone p50 %v p99 %v",
			pct(direct, 50), pct(direct, 99), pct(forwarded, 50), pct(forwarded, 99))
	}
}

// crossZoneShare runs one producer and one consumer per zone, one zone at a time, and measures from
// the agents' per-client byte counters how much of their traffic was with agents of another zone.
func crossZoneShare(b *testing.B, agents []*Agent, topic string, hints bool) (cross, total float64) {
	bytesOf := func(a *Agent) float64 {
		var n float64
		for _, dir := range []string{"in", "out"} {
			for _, z := range []string{"z1", "z2", "z3", unknownZone} {
				n += testutil.ToFloat64(a.metrics.zones.clientBytes.WithLabelValues(dir, a.cfg.AZ, z))
			}
		}
		return n
	}
	for z := 1; z <= 3; z++ {
		zone := fmt.Sprintf("z%d", z)
		before := make([]float64, len(agents))
		for i, a := range agents {
			before[i] = bytesOf(a)
		}
		opts := []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}
		cons := []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}
		if hints {
			opts = append(opts, kgo.ClientID("p;az="+zone))
			cons = append(cons, kgo.ClientID("c;az="+zone), kgo.Rack(zone))
		}
		cl := kgoClient(b, opts, agents...)
		var recs []*kgo.Record
		for i := range 600 {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % 6), Value: make([]byte, 1024)})
		}
		if err := cl.ProduceSync(testCtx(b), recs...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		cl.Close()
		c := kgoClient(b, append(cons, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())), agents...)
		for got := 0; got < 600*z; {
			got += c.PollFetches(testCtx(b)).NumRecords()
		}
		c.Close()
		for i, a := range agents {
			d := bytesOf(a) - before[i]
			total += d
			if a.cfg.AZ != zone {
				cross += d
			}
		}
	}
	return cross, total
}

// forwardingLatency produces to partition 0 (led in z1, whichever agent) from a z2 client: first
// straight to the leader, then through the z2 agent, which forwards the sequencing.
func forwardingLatency(b *testing.B, agents []*Agent) (direct, forwarded []time.Duration) {
	createTopic(b, kgoClient(b, nil, agents...), "latency", 1, nil)
	var leader *Agent
	for leader == nil {
		for _, a := range agents {
			if leadsOf(a, "latency") == 1 {
				leader = a
			}
		}
	}
	var z2 *Agent
	for _, a := range agents {
		if a.cfg.AZ != leader.cfg.AZ {
			z2 = a
			break
		}
	}
	measure := func(cl *kgo.Client) []time.Duration {
		var out []time.Duration
		for range 200 {
			start := time.Now()
			if err := cl.ProduceSync(testCtx(b), &kgo.Record{Topic: "latency", Value: make([]byte, 1024)}).FirstErr(); err != nil {
				b.Fatal(err)
			}
			out = append(out, time.Since(start))
		}
		return out
	}
	direct = measure(kgoClient(b, nil, leader))
	forwarded = measure(kgoClient(b, []kgo.Opt{kgo.ClientID("p;az=" + z2.cfg.AZ)}, z2))
	return direct, forwarded
}

func pct(d []time.Duration, p int) time.Duration {
	d = slices.Clone(d)
	slices.Sort(d)
	return d[min(len(d)-1, len(d)*p/100)].Round(100 * time.Microsecond)
}

// BenchmarkZoneForwardCost prints what forwarding costs a produce with an object store of S3
// Standard's latency (segstore's standard profile: PUT p50 30 ms, GET p50 15 ms) and a 20 ms flush:
// the produce latency of a z2 client to a partition led in z1, straight to the leader and through the
// z2 agent, and the throughput of one z2 producer through the z2 agent.
//
//	go test ./agent -run '^$' -bench ZoneForwardCost -benchtime 1x
func BenchmarkZoneForwardCost(b *testing.B) {
	profile, err := segstore.Profile(segstore.ProfileStandard)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		tc := newTestCluster(b)
		var seed atomic.Uint64
		tc.wrapStore = func(_ string, s segstore.Store) segstore.Store { return segstore.WithProfile(s, profile, seed.Add(1)) }
		fast := func(zone string) func(*Config) {
			return func(c *Config) { c.AZ, c.FlushInterval = zone, 20*time.Millisecond }
		}
		agents := []*Agent{tc.agent("z1-a1", fast("z1")), tc.agent("z2-a1", fast("z2"))}
		direct, forwarded := forwardingLatency(b, agents)
		b.Logf("produce latency to a leader from the other zone, S3 standard profile, 20ms flush: direct p50 %v p99 %v; forwarded in-zone p50 %v p99 %v",
			pct(direct, 50), pct(direct, 99), pct(forwarded, 50), pct(forwarded, 99))
		other := agents[0]
		if leadsOf(other, "latency") == 1 {
			other = agents[1]
		}
		mibs := forwardedThroughput(b, other, "latency", 64<<20)
		b.Logf("one producer through its zone's agent to the other zone's leader, 1 KiB records: %.1f MiB/s", mibs)
	}
}

// forwardedThroughput produces n bytes of 1 KiB records to topic's partition 0 through a (a client of
// a's zone) as fast as one franz-go producer goes, and returns MiB/s.
func forwardedThroughput(b *testing.B, a *Agent, topic string, n int) float64 {
	cl := kgoClient(b, []kgo.Opt{kgo.ClientID("p;az=" + a.cfg.AZ), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MaxBufferedRecords(1 << 16)}, a)
	var failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range n / 1024 {
		wg.Add(1)
		cl.Produce(testCtx(b), &kgo.Record{Topic: topic, Value: make([]byte, 1024)}, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d records failed", failed.Load())
	}
	return float64(n) / (1 << 20) / time.Since(start).Seconds()
}
