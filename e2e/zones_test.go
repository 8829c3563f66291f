package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

// Zones and agent groups with real processes: the multi-process counterpart of
// agent/zones_cluster_test.go. Three zones with two "streamhouse agent" processes each (z1-1, z1-2,
// z2-1, …; --az z1..z3); in every zone an idempotent franz-go producer writes every partition of the
// traffic topics (2 × 6 partitions) and a franz-go consumer tails them all (assigned, no group), each
// declaring its zone as docs/OPERATING.md says. What crossed zones is read from the agents' own
// counters on /metrics.

var zoneNames = []string{"z1", "z2", "z3"}

// zoneTick paces each zone's producer: 12 partitions every 30 ms, so that three zones together write
// about as much as the single producer of the other cluster tests (1,200 records/s).
const zoneTick = 30 * time.Millisecond

// zoneClient are the options of a client of zone z: its zone as client.rack (Fetch) and in its client id
// (Metadata and Produce carry no rack). Metadata is refreshed every 2 s rather than kgo's 5 min, so that
// a client also moves to an agent that joins its zone (a restarted one), not only away from a dead one.
func zoneClient(z, role string) []kgo.Opt {
	return []kgo.Opt{kgo.ClientID(role + ";az=" + z), kgo.Rack(z),
		kgo.MetadataMinAge(250 * time.Millisecond), kgo.MetadataMaxAge(2 * time.Second)}
}

// zoneRun is a cluster of two agents per zone with a producer and a tailing consumer in every zone.
type zoneRun struct {
	c     *cluster
	ids   []string   // agent ids, sorted
	trs   []*traffic // by zone
	tls   []*tailer  // by zone
	start time.Time
}

// startZones starts the agents, creates the traffic topics, waits until leadership is spread over all
// six agents (so that most partitions are led from another zone than each producer's), starts the
// producers and consumers and waits until every zone's producer is acknowledged on every partition.
func startZones(t *testing.T) *zoneRun {
	t.Helper()
	zr := &zoneRun{c: startCluster(t, 0)}
	for _, z := range zoneNames {
		for i := 1; i <= 2; i++ {
			id := fmt.Sprintf("%s-%d", z, i)
			zr.c.start(t, id, z, "127.0.0.1:0", "127.0.0.1:0")
			zr.ids = append(zr.ids, id)
		}
	}
	for _, topic := range trafficTopics {
		createTopic(t, zr.c.brokers()[0], topic, trafficPartitions)
	}
	zr.c.waitBalanced(t, zr.ids...)
	zr.start = time.Now()
	for _, z := range zoneNames {
		zr.tls = append(zr.tls, startTailer(t, zr.c, zoneClient(z, "consumer")...))
		zr.trs = append(zr.trs, zr.c.produceTraffic(t, z+"-", zoneTick, zoneClient(z, "producer")...))
	}
	zr.progress(t, 20)
	return zr
}

// progress waits until every zone's producer has n more acknowledgements on every partition.
func (zr *zoneRun) progress(t *testing.T, n int) {
	t.Helper()
	for _, tr := range zr.trs {
		tr.waitProgress(t, n)
	}
}

// finish stops the producers and checks the history as cluster.finish does, for every zone's consumer:
// no error reached a producer, and each consumer read every acknowledged record of every producer
// exactly once, where it was acknowledged, offsets dense up to the end offsets, each producer's order
// kept. It returns the acknowledgements.
func (zr *zoneRun) finish(t *testing.T) map[string]record {
	t.Helper()
	acked := map[string]record{}
	for i, tr := range zr.trs {
		tr.stop(t)
		t.Logf("zone %s:", zoneNames[i])
		tr.logGaps(t, zr.start)
		if errs := tr.errors(); len(errs) > 0 {
			t.Errorf("zone %s: %d records failed at the producer (kgo retries retriable errors itself): %s",
				zoneNames[i], len(errs), sample(errs))
		}
		maps.Copy(acked, tr.acknowledged())
	}
	if len(acked) == 0 {
		t.Fatal("no record was acknowledged")
	}
	ends := map[tp]int64{}
	for _, p := range zr.c.status(t).Partitions {
		if slices.Contains(trafficTopics, p.Topic) {
			ends[tp{p.Topic, p.Partition}] = p.NextOffset
		}
	}
	for i, tl := range zr.tls {
		tl.check(t, "the consumer of zone "+zoneNames[i], acked, ends)
	}
	return acked
}

// zoneKey is one series of streamhouse_client_bytes_total.
type zoneKey struct{ direction, agentZone, clientZone string }

// zoneBill is what the agents' zone counters say, summed over the agents scraped.
type zoneBill struct {
	client        map[zoneKey]float64 // streamhouse_client_bytes_total
	crossRecords  float64             // streamhouse_cross_zone_bytes_total{kind="records"}
	crossMetadata float64             // streamhouse_cross_zone_bytes_total{kind="metadata"}
	fallbacks     float64             // streamhouse_zone_fallback_total
	byAgent       map[string]float64  // client record bytes per agent id
}

// scrapeZones reads the zone counters of the running agents ids.
func scrapeZones(t *testing.T, c *cluster, ids ...string) zoneBill {
	t.Helper()
	b := zoneBill{client: map[zoneKey]float64{}, byAgent: map[string]float64{}}
	for _, id := range ids {
		m := c.agents[id]
		if m.exited() {
			t.Fatalf("scrape %s: the agent is not running", id)
		}
		ms := scrapeMetrics(t, m.http+"/metrics")
		series := ms.matching("streamhouse_cross_zone_bytes_total")
		if len(series) != 2 {
			t.Fatalf("%s: streamhouse_cross_zone_bytes_total has series %v, want kind records and metadata", id, series)
		}
		for s, v := range series {
			switch kind := seriesLabels(s)["kind"]; kind {
			case "records":
				b.crossRecords += v
			case "metadata":
				b.crossMetadata += v
			default:
				t.Fatalf("%s: %s: unknown kind %q", id, s, kind)
			}
		}
		for s, v := range ms.matching("streamhouse_client_bytes_total") {
			l := seriesLabels(s)
			b.client[zoneKey{l["direction"], l["agent_zone"], l["client_zone"]}] += v
			b.byAgent[id] += v
			if l["agent_zone"] != m.az {
				t.Errorf("%s (zone %s) labels its client bytes agent_zone=%q: %s", id, m.az, l["agent_zone"], s)
			}
		}
		b.fallbacks += ms["streamhouse_zone_fallback_total"]
	}
	return b
}

// seriesLabels are the labels of a series as scrapeMetrics keys it: name{k="v",...}. (Values with
// escaped quotes do not occur here.)
func seriesLabels(series string) map[string]string {
	l := map[string]string{}
	_, rest, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
	for rest != "" {
		k, v, ok := strings.Cut(rest, `="`)
		end := strings.IndexByte(v, '"')
		if !ok || end < 0 {
			break
		}
		l[k] = v[:end]
		rest = strings.TrimPrefix(v[end+1:], ",")
	}
	return l
}

// total is the client record bytes in direction dir (any when empty) of agents of zone az and clients
// of zone cz (any when empty).
func (b zoneBill) total(dir, az, cz string) float64 {
	var n float64
	for k, v := range b.client {
		if (dir == "" || k.direction == dir) && (az == "" || k.agentZone == az) && (cz == "" || k.clientZone == cz) {
			n += v
		}
	}
	return n
}

// check asserts that no client record byte crossed a zone — by the agents' cross-zone counter and,
// independently, by every client-bytes series, whose client zone must be its agent's (every client
// of these tests declares its zone) — that record bytes were counted in both directions in every zone,
// so that zero cannot come from counting nothing, that sequencing metadata did cross zones (produce
// was forwarded to leaders in other zones), and that no fetch fell back to another zone. It logs the
// cross-zone share and the totals.
func (b zoneBill) check(t *testing.T) {
	t.Helper()
	total := b.total("", "", "")
	share := 0.0
	if total > 0 {
		share = 100 * b.crossRecords / total
	}
	t.Logf("client record bytes: %.0f (in %.0f, out %.0f); crossed zones: %.0f record bytes (%.1f%%), %.0f "+
		"metadata bytes; zone fallbacks %.0f", total, b.total("in", "", ""), b.total("out", "", ""),
		b.crossRecords, share, b.crossMetadata, b.fallbacks)
	if b.crossRecords != 0 {
		t.Errorf("streamhouse_cross_zone_bytes_total{kind=\"records\"} = %.0f, want 0", b.crossRecords)
	}
	for _, k := range slices.SortedFunc(maps.Keys(b.client), func(x, y zoneKey) int {
		return strings.Compare(fmt.Sprint(x), fmt.Sprint(y))
	}) {
		if v := b.client[k]; v > 0 && k.agentZone != k.clientZone {
			t.Errorf("%.0f record bytes %s between an agent of zone %s and a client of zone %s", v, k.direction, k.agentZone, k.clientZone)
		}
	}
	for _, z := range zoneNames {
		for _, dir := range []string{"in", "out"} {
			if b.total(dir, z, z) == 0 {
				t.Errorf("no record bytes %s counted between the agents and clients of zone %s", dir, z)
			}
		}
	}
	if b.crossMetadata == 0 {
		t.Error("no sequencing metadata crossed zones: produce was not forwarded to leaders in other zones")
	}
	if b.fallbacks != 0 {
		t.Errorf("%.0f fetches fell back to another zone, though every zone had a live agent", b.fallbacks)
	}
}

// valueBytes is the size of the values of the acknowledged records, by the producer's zone (the tag
// that starts the sequence: "topic.partition.zN-sequence").
func valueBytes(acked map[string]record) map[string]float64 {
	n := map[string]float64{}
	for v := range acked {
		parts := strings.SplitN(v, ".", 3)
		z, _, _ := strings.Cut(parts[len(parts)-1], "-")
		n[z] += float64(len(v))
	}
	return n
}

// Three zones, two agents each, a producer and a consumer in every zone: no client record byte crosses
// a zone, while the sequencing of the produce that lands outside its leader's zone does; every
// acknowledged record is read back exactly once in every zone, offsets dense. Every agent is
// scraped, so the bytes counted are all the bytes: each zone's agents must have received at least the
// values its producer had acknowledged and served at least every acknowledged value to its consumer.
func TestZonesNoCrossZoneRecords(t *testing.T) {
	t.Parallel()
	zr := startZones(t)
	zr.progress(t, 100)
	acked := zr.finish(t)
	bill := scrapeZones(t, zr.c, zr.ids...)
	bill.check(t)
	produced := valueBytes(acked)
	var all float64
	for _, z := range zoneNames {
		all += produced[z]
	}
	for _, z := range zoneNames {
		if in := bill.total("in", z, z); in < produced[z] {
			t.Errorf("zone %s: %.0f record bytes counted in, less than the %.0f bytes of values acknowledged to its producer", z, in, produced[z])
		}
		if out := bill.total("out", z, z); out < all {
			t.Errorf("zone %s: %.0f record bytes counted out, less than the %.0f bytes of values its consumer read", z, out, all)
		}
	}
	t.Logf("%d records acknowledged, %.0f bytes of values", len(acked), all)
}

// The same while the agent leading the most partitions is killed (kill -9) mid-run, then started again:
// still no client record byte crosses a zone, and nothing acknowledged is lost or read twice (the
// producers are idempotent; a batch forwarded to the dead leader is retried through another agent).
// The killed process's counters die with it: the bill is what the five survivors and the restarted
// incarnation counted, and the traffic the dead agent carried before the kill is not in it.
func TestZonesKill9(t *testing.T) {
	t.Parallel()
	zr := startZones(t)
	victim := zr.c.busiest(t, trafficTopics...)
	fault := time.Now()
	victim.kill(t)
	led := zr.c.waitLed(t, fault, victim.id)
	t.Logf("kill -9 of %s (zone %s): every partition led by a live agent after %v", victim.id, victim.az, led.Round(time.Millisecond))
	zr.progress(t, 50) // every zone's producer, the victim's zone's included, acknowledged on every partition
	restarted := zr.c.restart(t, victim.id)
	zr.c.waitBalanced(t, zr.ids...)
	zr.progress(t, 50)
	acked := zr.finish(t)
	bill := scrapeZones(t, zr.c, zr.ids...) // the restarted incarnation's counters started at its restart
	bill.check(t)
	t.Logf("%d records acknowledged; after its restart %s counted %.0f client record bytes", len(acked),
		restarted.id, bill.byAgent[restarted.id])
}

// Agents in two agent groups, a and b (two each, in zones z1 and z2); topic tenant-b is bound to group
// b, topic shared to none. A client of group a — which knows only group a's agents — is told only of
// group a's agents by every Metadata and FindCoordinator answer of each of them, and connects to no
// other; for it tenant-b does not exist: Metadata, Produce and Fetch answer UNKNOWN_TOPIC_OR_PARTITION
// and its producer fails. The same raw Produce and Fetch succeed at group b's agents, a group b client
// produces and reads tenant-b, and a group a client the shared topic. Both groups run a consumer group
// of the same id without meeting.
func TestZonesAgentGroupIsolation(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0)
	addrs := map[string][]string{} // agent group → Kafka addresses
	for _, g := range []string{"a", "b"} {
		for i, z := range []string{"z1", "z2"} {
			m := c.start(t, fmt.Sprintf("g%s-%d", g, i+1), z, "127.0.0.1:0", "127.0.0.1:0", "--group", g)
			addrs[g] = append(addrs[g], m.kafka)
		}
	}
	sh(t, addrs["b"][0], "", "topic", "create", "--partitions", "2", "--config", "streamhouse.agent.group=b", "tenant-b")
	createTopic(t, addrs["a"][0], "shared", 2)
	st := c.waitStatus(t, "every partition led", settleTimeout, func(st clusterStatus) string {
		if un := st.unled(); len(un) > 0 {
			return fmt.Sprintf("%d partitions without a live leader: %s", len(un), sample(un))
		}
		return ""
	})
	for k, l := range st.leaders("tenant-b") {
		if !strings.HasPrefix(l, "gb-") {
			t.Errorf("%s, bound to group b, is led by %s", k, l)
		}
	}

	// Raw requests to each agent of group a, as a client of group a sends them.
	rawA := rawClient(t, c, addrs["a"])
	for _, br := range rawA.SeedBrokers() {
		checkGroupView(t, br, addrs["a"])
		sp := produceRaw(t, br, "tenant-b", "from group a")
		wantErr(t, "group a: produce to tenant-b", sp.ErrorCode, kerr.UnknownTopicOrPartition)
		fp := fetchRaw(t, br, "tenant-b")
		wantErr(t, "group a: fetch of tenant-b", fp.ErrorCode, kerr.UnknownTopicOrPartition)
	}
	// The same requests at group b's agents succeed: the refusals are the group's, not the requests'.
	rawB := rawClient(t, c, addrs["b"])
	rawValues := map[string]bool{}
	for i, br := range rawB.SeedBrokers() {
		v := fmt.Sprintf("raw-b-%d", i)
		rawValues[v] = true
		sp := produceRaw(t, br, "tenant-b", v)
		wantErr(t, "group b: produce to tenant-b", sp.ErrorCode, nil)
		fp := fetchRaw(t, br, "tenant-b")
		wantErr(t, "group b: fetch of tenant-b", fp.ErrorCode, nil)
		if len(fp.RecordBatches) == 0 {
			t.Errorf("group b: fetch of tenant-b/0 from offset 0 returned no records (high watermark %d)", fp.HighWatermark)
		}
	}

	// franz-go clients of each group: every connection of group a's goes to one of its agents.
	dialedA := &dialed{addrs: map[string]bool{}}
	prodA := c.client(t, kgo.SeedBrokers(addrs["a"]...), kgo.ClientID("producer;group=a"), kgo.WithHooks(dialedA),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.UnknownTopicRetries(2))
	prodB := c.client(t, kgo.SeedBrokers(addrs["b"]...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	ctx, cancel := context.WithTimeout(context.Background(), progressTimeout)
	defer cancel()
	err := prodA.ProduceSync(ctx, &kgo.Record{Topic: "tenant-b", Partition: 0, Value: []byte("a-to-b")}).FirstErr()
	if !errors.Is(err, kerr.UnknownTopicOrPartition) {
		t.Errorf("group a's producer to tenant-b: %v, want %v", err, kerr.UnknownTopicOrPartition)
	}
	const n = 50
	wantA := produceValues(t, prodA, "shared", "a", n, 2)
	wantB := produceValues(t, prodB, "tenant-b", "b", n, 2)
	maps.Copy(wantB, rawValues)

	readA := c.client(t, kgo.SeedBrokers(addrs["a"]...), kgo.ClientID("reader;group=a"), kgo.WithHooks(dialedA),
		kgo.ConsumerGroup("readers"), kgo.ConsumeTopics("shared"), kgo.FetchMaxWait(200*time.Millisecond))
	readB := c.client(t, kgo.SeedBrokers(addrs["b"]...), kgo.ClientID("reader;group=b"),
		kgo.ConsumerGroup("readers"), kgo.ConsumeTopics("tenant-b"), kgo.FetchMaxWait(200*time.Millisecond))
	readValues(t, readA, "group a's consumer group of shared", wantA)
	readValues(t, readB, "group b's consumer group of tenant-b", wantB)
	for g, cl := range map[string]*kgo.Client{"a": readA, "b": readB} {
		ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
		described, err := kadm.NewClient(cl).DescribeGroups(ctx, "readers")
		cancel()
		d, ok := described["readers"]
		switch {
		case err != nil || !ok || d.Err != nil:
			t.Errorf("group %s: describe consumer group readers: %v %v", g, err, d.Err)
		case len(d.Members) != 1 || d.Members[0].ClientID != "reader;group="+g:
			t.Errorf("group %s: consumer group readers has members %v, want only reader;group=%s", g, d.Members, g)
		}
	}
	dialedA.mu.Lock()
	defer dialedA.mu.Unlock()
	for addr := range dialedA.addrs {
		if !slices.Contains(addrs["a"], addr) {
			t.Errorf("a client of group a connected to %s, not an agent of group a %v", addr, addrs["a"])
		}
	}
	t.Logf("group a's clients connected to %v", slices.Sorted(maps.Keys(dialedA.addrs)))
}

// rawClient is a franz-go client seeded with addrs for raw requests to each of them. Fetch is capped at
// v12, the last version that names topics (v13+ names them by id, which a client of another group
// cannot know).
func rawClient(t *testing.T, c *cluster, addrs []string) *kgo.Client {
	t.Helper()
	v := kversion.Stable()
	v.SetMaxKeyVersion(kmsg.Fetch.Int16(), 12)
	return c.client(t, kgo.SeedBrokers(addrs...), kgo.MaxVersions(v))
}

// ask sends req to br and returns the answer.
func ask(t *testing.T, br *kgo.Broker, req kmsg.Request) kmsg.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	resp, err := br.Request(ctx, req)
	if err != nil {
		t.Fatalf("%s request: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

// wantErr checks a Kafka error code; want nil means none.
func wantErr(t *testing.T, what string, code int16, want error) {
	t.Helper()
	if got := kerr.ErrorForCode(code); got != want {
		t.Errorf("%s: error %v, want %v", what, got, want)
	}
}

// checkGroupView asks br, an agent of the group whose Kafka addresses are group, for Metadata (every
// topic, then tenant-b and shared by name) and for the coordinators of several consumer groups, and
// checks that every agent each answer names is one of group, that tenant-b is unknown and shared known.
// FindCoordinator is asked again until every group has a coordinator: the group's offsets topic is
// created by its first agent, and each answer on the way is checked too.
func checkGroupView(t *testing.T, br *kgo.Broker, group []string) {
	t.Helper()
	for _, topics := range [][]string{nil, {"tenant-b", "shared"}} {
		req := kmsg.NewPtrMetadataRequest()
		for _, name := range topics {
			rt := kmsg.NewMetadataRequestTopic()
			rt.Topic = kmsg.StringPtr(name)
			req.Topics = append(req.Topics, rt)
		}
		md := ask(t, br, req).(*kmsg.MetadataResponse)
		what := fmt.Sprintf("Metadata(%s)", strings.Join(topics, ", "))
		if topics == nil {
			what = "Metadata(all topics)"
		}
		nodes := map[int32]bool{}
		for _, b := range md.Brokers {
			addr := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port)))
			if !slices.Contains(group, addr) {
				t.Errorf("%s answer lists agent %d at %s, not of the client's group %v", what, b.NodeID, addr, group)
			}
			nodes[b.NodeID] = true
		}
		if len(md.Brokers) != len(group) {
			t.Errorf("%s answer lists %d agents, want the %d of the client's group", what, len(md.Brokers), len(group))
		}
		found := map[string]bool{}
		for _, mt := range md.Topics {
			name := deref(mt.Topic)
			found[name] = true
			switch {
			case name == "tenant-b" && mt.ErrorCode != kerr.UnknownTopicOrPartition.Code:
				t.Errorf("%s: tenant-b answered with error %v, want %v", what, kerr.ErrorForCode(mt.ErrorCode), kerr.UnknownTopicOrPartition)
			case strings.HasSuffix(name, ".b"):
				t.Errorf("%s lists group b's %s", what, name)
			case name == "shared":
				wantErr(t, what+": shared", mt.ErrorCode, nil)
				for _, p := range mt.Partitions {
					if !nodes[p.Leader] {
						t.Errorf("%s: shared/%d led by node %d, not a listed agent", what, p.Partition, p.Leader)
					}
				}
			}
		}
		if found["tenant-b"] != (topics != nil) {
			t.Errorf("%s: tenant-b listed: %v, want %v (when named: as unknown)", what, found["tenant-b"], topics != nil)
		}
		if !found["shared"] {
			t.Errorf("%s does not list the unbound topic shared", what)
		}
	}

	deadline := time.Now().Add(settleTimeout)
	tick := time.NewTicker(statusPoll) // polling the agent for coordinators, as a client would
	defer tick.Stop()
	for {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorKeys = []string{"readers", "g1", "g2", "g3", "g4", "g5", "g6", "g7"}
		missing := 0
		for _, co := range ask(t, br, req).(*kmsg.FindCoordinatorResponse).Coordinators {
			if co.ErrorCode != 0 {
				missing++
				continue
			}
			if addr := net.JoinHostPort(co.Host, strconv.Itoa(int(co.Port))); !slices.Contains(group, addr) {
				t.Errorf("FindCoordinator(%s) answered node %d at %s, not of the client's group %v", co.Key, co.NodeID, addr, group)
			}
		}
		if missing == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("FindCoordinator: %d groups still without a coordinator after %v", missing, settleTimeout)
		}
		<-tick.C
	}
}

// produceRaw produces one record to partition 0 of topic through br (acks=all) and returns the answer.
func produceRaw(t *testing.T, br *kgo.Broker, topic, value string) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, int32(progressTimeout/time.Millisecond)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = recordBatch([]byte(value))
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := ask(t, br, req).(*kmsg.ProduceResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("produce to %s/0: answer %+v", topic, resp)
	}
	return resp.Topics[0].Partitions[0]
}

// fetchRaw fetches partition 0 of topic from offset 0 through br, by name (v12), and returns the answer.
func fetchRaw(t *testing.T, br *kgo.Broker, topic string) kmsg.FetchResponseTopicPartition {
	t.Helper()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, 0, 1, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.FetchOffset, rp.PartitionMaxBytes = 0, 1<<20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := ask(t, br, req).(*kmsg.FetchResponse)
	if req.Version != 12 {
		t.Fatalf("fetch went out as v%d, want v12 (topics by name)", req.Version)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch of %s/0: answer %+v", topic, resp)
	}
	return resp.Topics[0].Partitions[0]
}

// recordBatch is a record batch (magic 2) of one record with value, no key and no producer id.
func recordBatch(value []byte) []byte {
	rec := []byte{0}                   // attributes
	rec = binary.AppendVarint(rec, 0)  // timestamp delta
	rec = binary.AppendVarint(rec, 0)  // offset delta
	rec = binary.AppendVarint(rec, -1) // key: null
	rec = binary.AppendVarint(rec, int64(len(value)))
	rec = append(rec, value...)
	rec = binary.AppendVarint(rec, 0) // headers
	records := append(binary.AppendVarint(nil, int64(len(rec))), rec...)
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, FirstTimestamp: now, MaxTimestamp: now,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 1, Records: records}
	b.Length = int32(49 + len(records)) // the header after the length field is 49 bytes
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// readValues polls cl until it has read as many records as want has values, and checks that it read
// each value of want once and nothing else.
func readValues(t *testing.T, cl *kgo.Client, who string, want map[string]bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()
	seen := map[string]int{}
	for read := 0; read < len(want); {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("%s read %d of %d records within %v", who, read, len(want), groupTimeout)
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("%s: fetch %s/%d: %v", who, topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++; read++ })
	}
	for v, k := range seen {
		if k != 1 || !want[v] {
			t.Errorf("%s read %q %d times, want once if it was produced to the topic (%v)", who, v, k, want[v])
		}
	}
	for v := range want {
		if seen[v] == 0 {
			t.Errorf("%s did not read %q", who, v)
		}
	}
}

// dialed is a kgo hook that remembers the address of every agent a client connected to.
type dialed struct {
	mu    sync.Mutex
	addrs map[string]bool
}

func (d *dialed) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, _ net.Conn, _ error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.addrs[net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port)))] = true
}
