package agent

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// crossZoneMetadataBytes sums, over agents, the sequencing metadata bytes that crossed zones, and the
// fallbacks: clients sent to another zone because theirs had no live agent.
func crossZoneMetadataBytes(agents []*Agent) (metadata, fallbacks float64) {
	for _, a := range agents {
		metadata += testutil.ToFloat64(a.metrics.zones.crossZoneBytes.WithLabelValues("metadata"))
		fallbacks += testutil.ToFloat64(a.metrics.zones.fallbacks) + testutil.ToFloat64(a.metrics.zones.produceFallbacks)
	}
	return metadata, fallbacks
}

// zoneCrossings counts, as a client of zone sees them, the record bytes it exchanged with agents of
// another zone: produce requests written and record batches fetched. Counted at the client, it is
// what this test's clients did, whatever else reaches the agents: a client of a concurrent test still
// retrying an address this test's agent now listens on sends it records of no concern here.
type zoneCrossings struct {
	zone  string
	bytes *atomic.Int64
}

func (h zoneCrossings) elsewhere(meta kgo.BrokerMetadata) bool {
	return meta.Rack == nil || *meta.Rack != h.zone
}

func (h zoneCrossings) OnBrokerWrite(meta kgo.BrokerMetadata, key int16, n int, _, _ time.Duration, _ error) {
	if key == int16(kmsg.Produce) && h.elsewhere(meta) {
		h.bytes.Add(int64(n))
	}
}

func (h zoneCrossings) OnFetchBatchRead(meta kgo.BrokerMetadata, _ string, _ int32, m kgo.FetchBatchMetrics) {
	if h.elsewhere(meta) {
		h.bytes.Add(int64(m.CompressedBytes))
	}
}

// Three zones with two agents each; a producer and a consumer in every zone declare it. No record byte
// crosses a zone — also while the leader of a partition is killed mid-run — and every acknowledged
// record is read exactly once by every zone's consumer. The bytes are counted at the test's clients
// (zoneCrossings), not from the agents' metrics, which a concurrent test's client reconnecting to a
// reused port would add to.
func TestThreeZonesNoCrossZoneRecords(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	var agents []*Agent
	for z := 1; z <= 3; z++ {
		for i := 1; i <= 2; i++ {
			zone := fmt.Sprintf("z%d", z)
			agents = append(agents, tc.agent(fmt.Sprintf("%s-a%d", zone, i), func(c *Config) { c.AZ = zone }))
		}
	}
	const topic, partitions = "zones", 6
	createTopic(t, kgoClient(t, nil, agents...), topic, partitions, nil)

	var crossed atomic.Int64
	var mu sync.Mutex
	var acked []*kgo.Record
	produce := func(ctx context.Context, zone string, n int) {
		cl := kgoClient(t, []kgo.Opt{kgo.ClientID("p;az=" + zone), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.WithHooks(zoneCrossings{zone, &crossed})}, agents...)
		for i := range n {
			r := &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: fmt.Appendf(nil, "%s-%d-%d", zone, time.Now().UnixNano(), i)}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err == nil {
				mu.Lock()
				acked = append(acked, r)
				mu.Unlock()
			}
		}
	}
	run := func(n int) {
		var wg sync.WaitGroup
		for z := 1; z <= 3; z++ {
			wg.Go(func() { produce(testCtx(t), fmt.Sprintf("z%d", z), n) })
		}
		wg.Wait()
	}
	run(60)
	// Kill (not stop) the agent leading the most partitions while the producers run.
	victim := agents[0]
	for _, a := range agents {
		if leadsOf(a, topic) > leadsOf(victim, topic) {
			victim = a
		}
	}
	second := make(chan struct{})
	go func() {
		defer close(second)
		run(60)
	}()
	waitFor(t, "producers under way again", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 200 })
	victim.Close()
	<-second
	var live []*Agent
	for _, a := range agents {
		if a != victim {
			live = append(live, a)
		}
	}

	for z := 1; z <= 3; z++ {
		zone := fmt.Sprintf("z%d", z)
		consumed := consumeAll(t, live, topic, len(acked), kgo.ClientID("c;az="+zone), kgo.Rack(zone),
			kgo.FetchMaxWait(100*time.Millisecond), kgo.WithHooks(zoneCrossings{zone, &crossed}))
		checkDense(t, acked, consumed)
	}
	metadata, fallbacks := crossZoneMetadataBytes(agents)
	if n := crossed.Load(); n != 0 {
		// A zone has no live agent while its agents' etcd sessions are lost (a lease of 2 s here, missed
		// on a machine overloaded enough): then its clients are served elsewhere, and counted.
		if fallbacks == 0 {
			t.Fatalf("%d record bytes crossed zones, and no zone was ever without a live agent", n)
		}
		t.Logf("%d record bytes crossed zones in %v fallbacks: a zone was without a live agent (sessions lost under load)", n, fallbacks)
	}
	if metadata == 0 {
		t.Fatal("no sequencing metadata crossed zones: forwarding was not exercised")
	}
	t.Logf("%d records acknowledged; cross-zone: %d record bytes, %v metadata bytes", len(acked), crossed.Load(), metadata)
}

// A client of agent group A is only ever told about agents of A, and cannot produce to or fetch a topic
// bound to group B: for it, that topic does not exist (UNKNOWN_TOPIC_OR_PARTITION — the answer that
// reveals nothing about another tenant, where TOPIC_AUTHORIZATION_FAILED would confirm the topic).
func TestAgentGroupIsolation(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("ga", func(c *Config) { c.Group = "A"; c.AZ = "z1" })
	b := tc.agent("gb", func(c *Config) { c.Group = "B"; c.AZ = "z1" })
	group := "B"
	createTopic(t, kgoClient(t, nil, b), "tenant-b", 2, map[string]*string{configAgentGroup: &group})
	createTopic(t, kgoClient(t, nil, a), "shared", 2, nil)

	addrB := b.KafkaAddr()
	c := dialRaw(t, a)
	md := c.roundTrip(kmsg.NewPtrMetadataRequest(), 12).(*kmsg.MetadataResponse)
	for _, br := range md.Brokers {
		if net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port))) == addrB || br.NodeID == nodeID("gb") {
			t.Fatalf("group A's client learned group B's agent %s:%d", br.Host, br.Port)
		}
	}
	for _, tp := range md.Topics {
		if *tp.Topic == "tenant-b" {
			t.Fatal("group A's client sees the topic bound to group B")
		}
		for _, p := range tp.Partitions {
			if p.Leader == nodeID("gb") {
				t.Fatalf("group A's client is told group B's agent leads %s/%d", *tp.Topic, p.Partition)
			}
		}
	}
	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.CoordinatorKeys = []string{"g1", "g2", "g3"}
	for _, co := range c.roundTrip(fc, 4).(*kmsg.FindCoordinatorResponse).Coordinators {
		if co.ErrorCode == 0 && co.NodeID != nodeID("ga") {
			t.Fatalf("FindCoordinator told group A's client node %d", co.NodeID)
		}
	}
	sp := c.produceOne("tenant-b", 0, valueBatch(-1, -1, -1, nil, "x"))
	wantCode(t, "produce to another group's topic", sp.ErrorCode, kerr.UnknownTopicOrPartition)
	fp := c.fetchOne("tenant-b", 0, 0, 1<<20)
	wantCode(t, "fetch of another group's topic", fp.ErrorCode, kerr.UnknownTopicOrPartition)

	// An unbound topic is served to both groups, whichever group's agent leads each partition.
	for _, ag := range []*Agent{a, b} {
		cl := kgoClient(t, []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, ag)
		for p := range int32(2) {
			if err := cl.ProduceSync(testCtx(t), &kgo.Record{Topic: "shared", Partition: p, Value: []byte(ag.cfg.ID)}).FirstErr(); err != nil {
				t.Fatalf("client of group %s producing to the shared topic, partition %d: %v", ag.cfg.Group, p, err)
			}
		}
	}
}
