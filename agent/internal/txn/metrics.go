package txn

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
)

// Outcomes of a transaction, as streamhouse_txn_ends_total counts them: the decision written, by who
// took it.
const (
	OutcomeCommit  = "commit"  // EndTxn commit
	OutcomeAbort   = "abort"   // EndTxn abort
	OutcomeTimeout = "timeout" // aborted by the coordinator past transaction.timeout.ms
	OutcomeFenced  = "fenced"  // aborted by InitProducerID of a newer producer of the id
)

// metrics are the coordinator's counters; registered on Config.Registerer when there is one.
type metrics struct {
	ends       *prometheus.CounterVec
	loads      prometheus.Counter
	resumed    prometheus.Counter
	completion prometheus.Histogram
}

func newMetrics(c *Coordinator, reg prometheus.Registerer) metrics {
	m := metrics{
		ends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamhouse_txn_ends_total",
			Help: "Transactions this agent's coordinator decided, by outcome: commit, abort (by the producer), timeout, fenced (aborted by the coordinator)."},
			[]string{"outcome"}),
		loads: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamhouse_txn_coordinator_shard_loads_total",
			Help: "Shards of transactional ids this agent's coordinator loaded from etcd on becoming their coordinator (a start or a takeover)."}),
		resumed: prometheus.NewCounter(prometheus.CounterOpts{Name: "streamhouse_txn_completions_resumed_total",
			Help: "Decided transactions whose markers a shard's load found unfinished and resumed (left by a coordinator that failed or lost the shard)."}),
		completion: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "streamhouse_txn_completion_seconds",
			Help:    "From a transaction's decision (Prepare written) to its Complete state: its markers and group offsets written.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
	}
	for _, o := range []string{OutcomeCommit, OutcomeAbort, OutcomeTimeout, OutcomeFenced} {
		m.ends.WithLabelValues(o)
	}
	if reg != nil {
		reg.MustRegister(m.ends, m.loads, m.resumed, m.completion, newOpenCollector(c))
	}
	return m
}

// openCollector exports streamhouse_txn_open_transactions{state}: the transactions this agent
// coordinates that have not completed, from the shards it has loaded.
type openCollector struct {
	c    *Coordinator
	desc *prometheus.Desc
}

func newOpenCollector(c *Coordinator) *openCollector {
	return &openCollector{c: c, desc: prometheus.NewDesc("streamhouse_txn_open_transactions",
		"Transactions this agent coordinates that have not completed: ongoing, or decided with markers being written (prepare_commit, prepare_abort).",
		[]string{"state"}, nil)}
}

func (o *openCollector) Describe(ch chan<- *prometheus.Desc) { ch <- o.desc }

func (o *openCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{coord.TxnOngoing: 0, coord.TxnPrepareCommit: 0, coord.TxnPrepareAbort: 0}
	o.c.mu.Lock()
	for _, sh := range o.c.shards {
		for _, e := range sh.ids {
			if s := e.state.Load(); s != nil {
				if _, open := counts[*s]; open {
					counts[*s]++
				}
			}
		}
	}
	o.c.mu.Unlock()
	for s, label := range map[string]string{coord.TxnOngoing: "ongoing", coord.TxnPrepareCommit: "prepare_commit", coord.TxnPrepareAbort: "prepare_abort"} {
		ch <- prometheus.MustNewConstMetric(o.desc, prometheus.GaugeValue, float64(counts[s]), label)
	}
}
