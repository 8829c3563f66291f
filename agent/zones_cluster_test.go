package agent

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// crossZoneRecordBytes sums, over agents, the client record bytes that crossed zones.
func crossZoneRecordBytes(agents []*Agent) (records, metadata float64) {
	for _, a := range agents {
		records += testutil.ToFloat64(a.metrics.zones.crossZoneBytes.WithLabelValues("records"))
		metadata += testutil.ToFloat64(a.metrics.zones.crossZoneBytes.WithLabelValues("metadata"))
	}
	return records, metadata
}

// Three zones with two agents each; a producer and a consumer in every zone declare it. No record byte
// crosses a zone — also while the leader of a partition is killed mid-run — and every acknowledged
// record is read exactly once by every zone's consumer.
func TestThreeZonesNoCrossZoneRecords(t *testing.T) {
	// Not parallel: beside the other cluster tests, a failover once let 552 record bytes cross zones
	// (a CI run of 2026-12-07): under investigation, so it runs alone as it did before.
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

	var mu sync.Mutex
	var acked []*kgo.Record
	produce := func(ctx context.Context, zone string, n int) {
		cl := kgoClient(t, []kgo.Opt{kgo.ClientID("p;az=" + zone), kgo.RecordPartitioner(kgo.ManualPartitioner())}, agents...)
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
			kgo.FetchMaxWait(100*time.Millisecond))
		checkDense(t, acked, consumed)
	}
	records, metadata := crossZoneRecordBytes(agents)
	if records != 0 {
		t.Fatalf("%v record bytes crossed zones", records)
	}
	if metadata == 0 {
		t.Fatal("no sequencing metadata crossed zones: forwarding was not exercised")
	}
	t.Logf("%d records acknowledged; cross-zone: %v record bytes, %v metadata bytes", len(acked), records, metadata)
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
