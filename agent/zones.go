package agent

import (
	"hash/fnv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
)

// unknownZone labels the bytes of clients that declare no zone, otherZone those of clients that declare
// a zone no agent is registered in: a client names its own zone, and a label value per made-up name
// would grow the metrics without bound.
const (
	unknownZone = "unknown"
	otherZone   = "other"
)

// zoneSet is the zones agents are registered in, as of the watched view's last change.
type zoneSet struct {
	mu      sync.Mutex
	changed <-chan struct{} // the view's change signal the set was built at
	zones   map[string]bool
}

// zoneLabel is the client_zone label of a client of zone cz.
func (a *Agent) zoneLabel(cz string) string {
	if cz == "" {
		return unknownZone
	}
	zs := &a.zones
	zs.mu.Lock()
	defer zs.mu.Unlock()
	stale := zs.changed == nil
	if !stale {
		select {
		case <-zs.changed:
			stale = true
		default:
		}
	}
	if stale {
		zs.changed = a.cache.Changed() // before reading, so that a change meanwhile is not missed
		zs.zones = map[string]bool{}
		for _, ag := range a.cache.Agents() {
			zs.zones[ag.AZ] = true
		}
	}
	if zs.zones[cz] {
		return cz
	}
	a.limitHit(limitZoneLabels)
	return otherZone
}

// clientZone is the zone a client declares: Kafka's client.rack (Fetch v11+), or, for requests that
// carry no rack (Metadata, Produce), an `az=<zone>` element in its client id, e.g.
// `orders-app;az=eu-west-1a` — elements are separated by ';', ',', '&' or spaces.
func clientZone(clientID, rack string) string {
	if rack != "" {
		return rack
	}
	for _, el := range strings.FieldsFunc(clientID, func(r rune) bool {
		return r == ';' || r == ',' || r == '&' || r == ' '
	}) {
		if z, ok := strings.CutPrefix(el, "az="); ok && z != "" {
			return z
		}
	}
	return ""
}

// inZoneReplica picks the agent of this agent's group in zone z that should serve tp to a client of
// that zone: a stable choice among the zone's live agents, so that a partition's reads in one zone
// gather on one agent's cache. It reports false when z has no live agent.
func (a *Agent) inZoneReplica(z string, tp coord.TP) (coord.AgentInfo, bool) {
	var in []coord.AgentInfo
	for _, ag := range a.brokers() { // sorted by id
		if ag.AZ == z {
			in = append(in, ag)
		}
	}
	if len(in) == 0 {
		return coord.AgentInfo{}, false
	}
	h := fnv.New32a()
	h.Write(tp.Topic[:])
	h.Write([]byte{byte(tp.Partition >> 24), byte(tp.Partition >> 16), byte(tp.Partition >> 8), byte(tp.Partition)})
	return in[h.Sum32()%uint32(len(in))], true
}

// zoneMetrics count what a cloud bill counts: bytes between clients and agents by zone, and what
// crosses zones.
type zoneMetrics struct {
	clientBytes    *prometheus.CounterVec // direction, agent_zone, client_zone
	crossZoneBytes *prometheus.CounterVec // kind: records, metadata
	fallbacks      prometheus.Counter     // fetches
	// produceFallbacks counts partitions a client of a zone without a live agent was told to produce
	// to an agent of another zone (Metadata answers, produce leader hints).
	produceFallbacks prometheus.Counter
}

func newZoneMetrics() *zoneMetrics {
	m := &zoneMetrics{
		clientBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_client_bytes_total",
			Help: "Record bytes received from (in) and served to (out) Kafka clients, by agent zone and client zone (unknown when the client declares none, other when no agent is registered in the zone it declares).",
		}, []string{"direction", "agent_zone", "client_zone"}),
		crossZoneBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_cross_zone_bytes_total",
			Help: "Bytes this agent exchanged with a client or agent of another zone: records (client record bytes) or metadata.",
		}, []string{"kind"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_zone_fallback_total",
			Help: "Fetches of a client whose zone has no live agent of its group, served from another zone.",
		}),
		produceFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_zone_produce_fallback_total",
			Help: "Partitions a client whose zone has no live agent of its group was told to produce to in another zone (Metadata answers and produce leader hints).",
		}),
	}
	m.crossZoneBytes.WithLabelValues("records")
	m.crossZoneBytes.WithLabelValues("metadata")
	return m
}

func (m *zoneMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.clientBytes, m.crossZoneBytes, m.fallbacks, m.produceFallbacks}
}

// countClientRecords counts n record bytes moved between this agent and a client of zone cz.
func (a *Agent) countClientRecords(direction, cz string, n int) {
	if n == 0 {
		return
	}
	a.metrics.zones.clientBytes.WithLabelValues(direction, a.cfg.AZ, a.zoneLabel(cz)).Add(float64(n))
	if cz != "" && a.cfg.AZ != "" && cz != a.cfg.AZ {
		a.metrics.zones.crossZoneBytes.WithLabelValues("records").Add(float64(n))
	}
}
