package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/coord"
)

func TestClientZone(t *testing.T) {
	for _, tc := range []struct{ id, rack, want string }{
		{"app", "", ""},
		{"app", "z1", "z1"},
		{"app;az=z2", "", "z2"},
		{"az=z3", "", "z3"},
		{"app,az=z4,x=1", "", "z4"},
		{"app az=z5", "", "z5"},
		{"app;az=", "", ""},
		{"app;az=z6", "z7", "z7"}, // client.rack wins
		{"lazy=z8", "", ""},
	} {
		if got := clientZone(tc.id, tc.rack); got != tc.want {
			t.Errorf("clientZone(%q, %q) = %q, want %q", tc.id, tc.rack, got, tc.want)
		}
	}
}

// A consumer declaring its zone reads every record from an agent of that zone, wherever the
// partitions' leaders are: no record byte is served across zones.
func TestConsumeInZone(t *testing.T) {
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	a2 := tc.agent("a2", func(c *Config) { c.AZ = "z2" })
	cl := kgoClient(t, nil, a1, a2)
	createTopic(t, cl, "zoned", 4, nil)
	produced := produceN(t, cl, "zoned", "v", 400)

	// A short MaxWait: a partition moved to its in-zone agent is fetched with that agent's next
	// fetch, which waits behind one already long-polling there.
	consumed := consumeAll(t, []*Agent{a1}, "zoned", len(produced), kgo.Rack("z2"), kgo.FetchMaxWait(100*time.Millisecond))
	checkDense(t, produced, consumed)
	out := func(a *Agent, zone string) float64 {
		return testutil.ToFloat64(a.metrics.zones.clientBytes.WithLabelValues("out", a.cfg.AZ, zone))
	}
	if got := out(a1, "z2"); got != 0 {
		t.Fatalf("agent of z1 served %v record bytes to the z2 consumer", got)
	}
	if got := out(a2, "z2"); got == 0 {
		t.Fatal("agent of z2 served the z2 consumer nothing")
	}
	for _, a := range []*Agent{a1, a2} {
		if got := testutil.ToFloat64(a.metrics.zones.crossZoneBytes.WithLabelValues("records")); got != 0 {
			// The producer declared no zone, so only a known zone mismatch counts as crossing.
			t.Fatalf("agent %s counted %v cross-zone record bytes", a.cfg.ID, got)
		}
	}
}

// A consumer of a zone without a live agent is served from another zone, and that is counted.
func TestConsumeZoneFallback(t *testing.T) {
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	cl := kgoClient(t, nil, a1)
	createTopic(t, cl, "fallback", 1, nil)
	produced := produceN(t, cl, "fallback", "v", 10)
	consumed := consumeAll(t, []*Agent{a1}, "fallback", len(produced), kgo.Rack("z9"))
	checkDense(t, produced, consumed)
	if got := testutil.ToFloat64(a1.metrics.zones.fallbacks); got == 0 {
		t.Fatal("no fallback counted for a zone without agents")
	}
	if got := testutil.ToFloat64(a1.metrics.zones.crossZoneBytes.WithLabelValues("records")); got == 0 {
		t.Fatal("records served across zones were not counted")
	}
}

// A producer of a zone without a live agent is sent to another zone's agent, and that is counted; one
// of a zone with an agent is not.
func TestProduceZoneFallback(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	createTopic(t, kgoClient(t, nil, a1), "produce-fallback", 1, nil)
	produceN(t, kgoClient(t, []kgo.Opt{kgo.ClientID("app;az=z1")}, a1), "produce-fallback", "in", 5)
	if got := testutil.ToFloat64(a1.metrics.zones.produceFallbacks); got != 0 {
		t.Fatalf("%v produce fallbacks counted for a client of the agent's own zone", got)
	}
	produceN(t, kgoClient(t, []kgo.Opt{kgo.ClientID("app;az=z9")}, a1), "produce-fallback", "out", 5)
	if got := testutil.ToFloat64(a1.metrics.zones.produceFallbacks); got == 0 {
		t.Fatal("no produce fallback counted for a zone without agents")
	}
	if got := testutil.ToFloat64(a1.metrics.zones.crossZoneBytes.WithLabelValues("records")); got == 0 {
		t.Fatal("records produced across zones were not counted")
	}
}

// A client's zone becomes a metric label only when an agent is registered in that zone: any other
// zone is counted as "other", so however many racks clients make up, the label values stay bounded.
// Before, 3,000 made-up racks made 3,000 series.
func TestZoneLabelsBounded(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	c := ledTopicConn(t, a, "racks")
	wantOK(t, "produce", c.produceOne("racks", 0, valueBatch(-1, -1, -1, nil, "v")).ErrorCode)
	for i := range 50 {
		fetch := fetchReq("racks", 0, 1, 1<<20, fetchPart{0, 0, 1 << 20})
		fetch.Rack = fmt.Sprintf("made-up-%d", i)
		c.roundTrip(fetch, fetchVersion)
	}
	fetch := fetchReq("racks", 0, 1, 1<<20, fetchPart{0, 0, 1 << 20})
	fetch.Rack = "z1"
	c.roundTrip(fetch, fetchVersion)
	if n := testutil.CollectAndCount(a.metrics.zones.clientBytes); n > 3 { // in, unknown; out, other and z1
		t.Fatalf("%d client_bytes series after 50 made-up racks", n)
	}
	out := func(zone string) float64 {
		return testutil.ToFloat64(a.metrics.zones.clientBytes.WithLabelValues("out", "z1", zone))
	}
	if out(otherZone) == 0 || out("z1") == 0 {
		t.Fatalf("out bytes: other %v, z1 %v; want both counted", out(otherZone), out("z1"))
	}
	if n := hits(a, limitZoneLabels); n != 50 {
		t.Errorf("zone_labels hits = %v, want 50", n)
	}
}

// A partition without a leader is named, to a client of a zone with a live agent, as that agent (a new
// franz-go client parks a partition listed without a leader on its first seed broker, of any zone, and
// sends it records there); to a client that names no zone, and for an internal topic, it is listed
// without a leader, as Kafka lists it.
func TestLeaderlessPartitionStaysInZone(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	live := map[string]bool{}
	for _, ag := range a1.brokers() {
		live[ag.ID] = true
	}
	if !live["a1"] {
		t.Fatalf("a1 is not among its own live brokers: %v", live)
	}
	unled := coord.TP{Topic: coord.TopicID{0xfe, 0xed}, Partition: 3} // no leader key: never led
	if _, ok := a1.cache.Leader(unled); ok {
		t.Fatal("the made-up partition has a leader")
	}
	if ag, epoch, ok := a1.metadataLeader(unled, false, live, "z1"); !ok || ag != "a1" || epoch != -1 {
		t.Errorf("client of z1: leader %q epoch %d ok %v, want a1, -1, true", ag, epoch, ok)
	}
	for _, c := range []struct {
		name     string
		internal bool
		zone     string
	}{{"no zone", false, ""}, {"a zone without agents", false, "z9"}, {"internal topic", true, "z1"}} {
		if ag, _, ok := a1.metadataLeader(unled, c.internal, live, c.zone); ok {
			t.Errorf("%s: leader %q, want none (LEADER_NOT_AVAILABLE)", c.name, ag)
		}
	}
}
