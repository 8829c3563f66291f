package agent

import "github.com/prometheus/client_golang/prometheus"

// trustMetrics count what the agent refuses to take on trust: batches past the decompression limit,
// agents that failed to authenticate on the internal listener, and forwarded appends a leader refused.
type trustMetrics struct {
	decompressLimit prometheus.Counter
	authFailures    prometheus.Counter
	internalConns   prometheus.Gauge
	forwardRefused  *prometheus.CounterVec // reason: forwardRefusals
}

// Why a leader refuses a forwarded append: the object is not the caller's, it could not be read, or
// its bytes are not a valid batch (CRC, validation).
var forwardRefusals = []string{"not_own_object", "read_failed", "invalid_batch"}

func newTrustMetrics() *trustMetrics {
	m := &trustMetrics{
		decompressLimit: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_batch_decompress_limit_total",
			Help: "Compressed batches (produced, or forwarded by an agent) refused because they decompress past --max-decompressed-batch-bytes.",
		}),
		authFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_internal_auth_failures_total",
			Help: "Connections to the internal listener closed because they did not prove the cluster secret.",
		}),
		internalConns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_internal_connections",
			Help: "Open, authenticated connections of other agents to the internal listener.",
		}),
		forwardRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_forward_refused_total",
			Help: "Forwarded appends this agent refused to sequence, by reason: not_own_object, read_failed, invalid_batch.",
		}, []string{"reason"}),
	}
	for _, r := range forwardRefusals {
		m.forwardRefused.WithLabelValues(r)
	}
	return m
}

func (m *trustMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.decompressLimit, m.authFailures, m.internalConns, m.forwardRefused}
}
