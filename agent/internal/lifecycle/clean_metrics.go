package lifecycle

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
)

// cleanerMetrics are the compacted topics' cleaner's (streamhouse_cleaner_*).
type cleanerMetrics struct {
	cleans  prometheus.Counter
	bytes   *prometheus.CounterVec
	removed prometheus.Counter
	ratio   *prometheus.GaugeVec // per led compacted partition
}

func newCleanerMetrics(reg prometheus.Registerer) *cleanerMetrics {
	m := &cleanerMetrics{
		cleans: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_cleaner_cleans_total",
			Help: "Cleans of compacted partitions committed by this agent.",
		}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_cleaner_bytes_total",
			Help: "Batch bytes cleans read (direction read) and bytes of the objects they wrote (written).",
		}, []string{"direction"}),
		removed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_cleaner_records_removed_total",
			Help: "Records cleans removed: superseded by a later record of their key, tombstones past delete.retention.ms, records without a key.",
		}),
		ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamhouse_cleaner_dirty_ratio",
			Help: "Per compacted partition this agent leads: bytes of its cleanable dirty section over those of its segments up to it (min.cleanable.dirty.ratio triggers a clean).",
		}, []string{"topic", "partition"}),
	}
	for _, d := range []string{"read", "written"} {
		m.bytes.WithLabelValues(d)
	}
	if reg != nil {
		reg.MustRegister(m.cleans, m.bytes, m.removed, m.ratio)
	}
	return m
}

// observeClean records a committed clean.
func (m *Metrics) observeClean(read, written, removed int64) {
	m.cleaner.cleans.Inc()
	m.cleaner.bytes.WithLabelValues("read").Add(float64(read))
	m.cleaner.bytes.WithLabelValues("written").Add(float64(written))
	m.cleaner.removed.Add(float64(removed))
}

// observeDirty sets a compacted partition's dirty ratio.
func (m *Metrics) observeDirty(topic string, tp coord.TP, ratio float64) {
	m.cleaner.ratio.WithLabelValues(topic, strconv.Itoa(int(tp.Partition))).Set(ratio)
}

// forgetDirty drops the dirty ratio of a partition no longer led.
func (m *Metrics) forgetDirty(topic string, tp coord.TP) {
	m.cleaner.ratio.DeleteLabelValues(topic, strconv.Itoa(int(tp.Partition)))
}
