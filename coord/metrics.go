package coord

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Query operations labelled in streamhouse_metadata_store_query_duration_seconds.
const (
	opCreateTopic   = "create_topic"
	opDeleteTopic   = "delete_topic"
	opUpdateTopic   = "update_topic"
	opGetTopics     = "get_topics"
	opGetAgents     = "get_agents"
	opAllocatePID   = "allocate_producer_id"
	opMaintain      = "maintain"
	opDeleteRecords = "delete_records"
	opHealth        = "health"
	opNextPID       = "next_producer_id"
	opRegister      = "register"
	opResign        = "resign"
	opCacheLoad     = "cache_load"
	opRevision      = "revision"
	opClusterSecret = "cluster_secret"
	opSecurity      = "security"
)

var queryOps = []string{
	opCreateTopic, opDeleteTopic, opUpdateTopic, opGetTopics, opGetAgents,
	opAllocatePID, opMaintain, opDeleteRecords, opHealth, opNextPID, opRegister, opResign, opCacheLoad, opRevision,
	opClusterSecret, opSecurity, opLoadTxns, opLoadTxn, opWriteTxn,
}

// Results labelled in streamhouse_etcd_txns_total.
const (
	resultOK     = "ok"
	resultFenced = "fenced"
	resultError  = "error"
)

type metrics struct {
	txns         *prometheus.CounterVec
	txnDuration  prometheus.Histogram
	retries      prometheus.Counter
	fenced       prometheus.Counter
	leaseAcquire prometheus.Histogram
	query        *prometheus.HistogramVec
	heartbeat    *heartbeatGauge
}

// etcd round trips take around a millisecond on a LAN; a second is already an outage.
var etcdBuckets = []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		txns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_etcd_txns_total",
			Help: "Index commit Txns sent to etcd, by result (ok, fenced: a leader compare failed, error).",
		}, []string{"result"}),
		txnDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "streamhouse_etcd_txn_duration_seconds",
			Help:    "Latency of index commit Txns.",
			Buckets: etcdBuckets,
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_etcd_txn_retries_total",
			Help: "etcd Txns (index commits, group writes, leader-key acquisitions, maintenance writes) sent again after an attempt timed out or found etcd unavailable.",
		}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_fenced_commits_total",
			Help: "Partition commits refused because the committer no longer held the leader epoch.",
		}),
		leaseAcquire: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "streamhouse_lease_acquisition_duration_seconds",
			Help:    "Latency of one attempt to take a partition's leader key.",
			Buckets: etcdBuckets,
		}),
		query: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamhouse_metadata_store_query_duration_seconds",
			Help:    "Latency of metadata reads and writes against etcd, by operation.",
			Buckets: etcdBuckets,
		}, []string{"op"}),
		heartbeat: newHeartbeatGauge(),
	}
	for _, r := range []string{resultOK, resultFenced, resultError} {
		m.txns.WithLabelValues(r)
	}
	for _, op := range queryOps {
		m.query.WithLabelValues(op)
	}
	if reg != nil {
		m.txns = register(reg, m.txns)
		m.txnDuration = register(reg, m.txnDuration)
		m.retries = register(reg, m.retries)
		m.fenced = register(reg, m.fenced)
		m.leaseAcquire = register(reg, m.leaseAcquire)
		m.query = register(reg, m.query)
		m.heartbeat = register(reg, m.heartbeat)
	}
	return m
}

// register registers c, or returns the collector already registered under the same name, so
// that two Clients given one Registerer share their series instead of failing.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

// observeQuery records op's latency unless the caller gave up: a cancelled context says nothing
// about etcd.
func (m *metrics) observeQuery(ctx context.Context, op string, start time.Time) {
	if ctx.Err() == nil {
		m.query.WithLabelValues(op).Observe(time.Since(start).Seconds())
	}
}
