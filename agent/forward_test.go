package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// zoneClient is a franz-go client of zone z: its rack and its client id say so.
func zoneClient(t *testing.T, z string, agents ...*Agent) *kgo.Client {
	return kgoClient(t, []kgo.Opt{kgo.ClientID("app;az=" + z), kgo.Rack(z), kgo.FetchMaxWait(100 * time.Millisecond)}, agents...)
}

func clientBytes(a *Agent, direction string) float64 {
	var sum float64
	for _, z := range []string{"z1", "z2", unknownZone} {
		sum += testutil.ToFloat64(a.metrics.zones.clientBytes.WithLabelValues(direction, a.cfg.AZ, z))
	}
	return sum
}

// A producer of zone z2 writes every partition through the agent of its zone, including those led in
// z1: the record bytes stay in z2 and only the sequencing crosses to the leader. Offsets stay dense.
func TestProduceInZoneForwardsSequencing(t *testing.T) {
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	a2 := tc.agent("a2", func(c *Config) { c.AZ = "z2" })
	createTopic(t, kgoClient(t, nil, a1, a2), "inzone", 4, nil)
	waitFor(t, "leadership balanced", func() bool { return leadsOf(a1, "inzone") == 2 && leadsOf(a2, "inzone") == 2 })

	// Every partition gets records, whoever leads it (franz-go's default partitioner is sticky).
	cl := kgoClient(t, []kgo.Opt{kgo.ClientID("app;az=z2"), kgo.RecordPartitioner(kgo.ManualPartitioner())}, a2)
	var produced []*kgo.Record
	for i := range 400 {
		produced = append(produced, &kgo.Record{Topic: "inzone", Partition: int32(i % 4), Value: fmt.Appendf(nil, "v-%d", i)})
	}
	if err := cl.ProduceSync(testCtx(t), produced...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	consumed := consumeAll(t, []*Agent{a2}, "inzone", len(produced), kgo.ClientID("app;az=z2"), kgo.Rack("z2"),
		kgo.FetchMaxWait(100*time.Millisecond))
	checkDense(t, produced, consumed)

	if got := clientBytes(a1, "in") + clientBytes(a1, "out"); got != 0 {
		t.Fatalf("the z1 agent exchanged %v record bytes with z2 clients", got)
	}
	for _, a := range []*Agent{a1, a2} {
		if got := testutil.ToFloat64(a.metrics.zones.crossZoneBytes.WithLabelValues("records")); got != 0 {
			t.Fatalf("agent %s counted %v cross-zone record bytes", a.cfg.ID, got)
		}
	}
	if got := testutil.ToFloat64(a2.metrics.zones.crossZoneBytes.WithLabelValues("metadata")); got == 0 {
		t.Fatal("no sequencing metadata crossed to the z1 leader: nothing was forwarded")
	}
}

// The leader of forwarded partitions dies while a z2 producer writes through the z2 agent: nothing
// acknowledged is lost or duplicated, offsets stay dense.
func TestForwardingSurvivesLeaderLoss(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	a2 := tc.agent("a2", func(c *Config) { c.AZ = "z2" })
	createTopic(t, kgoClient(t, nil, a1, a2), "failover", 4, nil)
	waitFor(t, "leadership balanced", func() bool { return leadsOf(a1, "failover") == 2 && leadsOf(a2, "failover") == 2 })
	cl := zoneClient(t, "z2", a2)

	var mu sync.Mutex
	var acked []*kgo.Record
	ctx, stop := context.WithCancel(testCtx(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			r := &kgo.Record{Topic: "failover", Value: fmt.Appendf(nil, "v-%d", i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err == nil {
				mu.Lock()
				acked = append(acked, r)
				mu.Unlock()
			}
		}
	}()
	waitFor(t, "some records acknowledged", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 50 })
	a1.Close() // as a crash: its lease expires, a2 takes its partitions
	waitFor(t, "a2 leads every partition", func() bool { return leadsOf(a2, "failover") == 4 })
	mark := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	after := mark()
	waitFor(t, "records acknowledged after the failover", func() bool { return mark() > after+50 })
	stop()
	<-done
	mu.Lock()
	defer mu.Unlock()
	consumed := consumeAll(t, []*Agent{a2}, "failover", len(acked))
	checkDense(t, acked, consumed)
}

// leadsOf counts the partitions of topic that a leads.
func leadsOf(a *Agent, topic string) int {
	n := 0
	for _, pl := range a.lead.leaders.snapshot() {
		if pl.topic == topic {
			n++
		}
	}
	return n
}

// FuzzSequenceRequest drives the sequence API's decoder, which reads bytes from the network (an
// authenticated agent's, but still): nothing may panic, and whatever it accepts is a request the
// leader can check.
func FuzzSequenceRequest(f *testing.F) {
	f.Add([]byte(`{"appends":[{"topic":"00112233445566778899aabbccddeeff","partition":1,"object":"seg/x","pos":32,"len":70,"crc":7}]}`))
	f.Add([]byte(`{"appends":[]}`))
	f.Add([]byte(`{"appends":[{"len":-1}]}`))
	f.Add([]byte(`{"appends":[{"object":"o","pos":9223372036854775800,"len":70}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var r sequenceRequest
		if r.ReadFrom(data) != nil {
			return
		}
		for _, x := range r.Appends {
			if x.Partition < 0 || x.Len < kwire.BatchHeaderLen || x.Object == "" || x.Pos < 0 || x.Pos+int64(x.Len) < x.Pos {
				t.Fatalf("accepted an invalid append %+v", x)
			}
		}
		_ = r.AppendTo(nil)
	})
}
