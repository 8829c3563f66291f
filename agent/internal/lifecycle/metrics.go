package lifecycle

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the lifecycle's: what merges rewrite, what retention and GC remove, what the bucket
// holds by level.
type Metrics struct {
	merges       *prometheus.CounterVec
	mergeBytes   *prometheus.CounterVec
	mergeFailed  prometheus.Counter
	backlog      prometheus.Gauge
	logStarts    prometheus.Counter
	passes       *prometheus.CounterVec
	deleted      prometheus.Counter
	deletedBytes prometheus.Counter
	deadRecords  prometheus.Counter
	orphaned     prometheus.Gauge
	objects      *prometheus.GaugeVec
	objectBytes  *prometheus.GaugeVec
	cleaner      *cleanerMetrics
}

// Merge kinds labelled in streamhouse_compaction_merges_total.
const (
	kindTail     = "tail"
	kindSegments = "segments"
)

// NewMetrics registers the lifecycle's metrics on reg; nil keeps them unregistered.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		merges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_compaction_merges_total",
			Help: "Merges committed by this agent's partitions: kind tail (uncompacted entries into a level-1 segment) or segments (one level into the next).",
		}, []string{"kind"}),
		mergeBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_compaction_bytes_total",
			Help: "Batch bytes merges read and wrote again, by direction (read, written).",
		}, []string{"direction"}),
		mergeFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_compaction_failures_total",
			Help: "Merges abandoned (an object store or etcd error, a lost leadership); the next pass plans again.",
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_compaction_backlog_bytes",
			Help: "Bytes of uncompacted entries in the partitions this agent leads, as of its last maintenance pass.",
		}),
		logStarts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_retention_log_start_moves_total",
			Help: "Log start moves (retention and DeleteRecords) committed by this agent's partitions.",
		}),
		passes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_gc_passes_total",
			Help: "GC passes this agent ran, by result (ok, error).",
		}, []string{"result"}),
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_gc_deleted_objects_total",
			Help: "Objects GC deleted: unreferenced, older than the grace period and unreferenced for the read grace.",
		}),
		deletedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_gc_deleted_bytes_total",
			Help: "Bytes of the objects GC deleted.",
		}),
		deadRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_gc_dead_records_deleted_total",
			Help: "Commit records (and legacy index keys) GC deleted from etcd once none of their entries was live.",
		}),
		orphaned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_gc_orphaned_bytes",
			Help: "Bytes of the objects no live entry referenced at GC's last pass (young ones, still to be committed, included).",
		}),
		objects: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamhouse_s3_objects",
			Help: "Objects live entries reference, by level (0: flush objects; 1 and up: partition segments), at GC's last pass.",
		}, []string{"level"}),
		objectBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamhouse_s3_object_bytes",
			Help: "Bytes of the objects live entries reference, by level, at GC's last pass.",
		}, []string{"level"}),
		cleaner: newCleanerMetrics(reg),
	}
	for _, k := range []string{kindTail, kindSegments} {
		m.merges.WithLabelValues(k)
	}
	for _, d := range []string{"read", "written"} {
		m.mergeBytes.WithLabelValues(d)
	}
	for _, r := range []string{"ok", "error"} {
		m.passes.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.merges, m.mergeBytes, m.mergeFailed, m.backlog, m.logStarts, m.passes, m.deleted,
			m.deletedBytes, m.deadRecords, m.orphaned, m.objects, m.objectBytes)
	}
	return m
}

// ObservePassResult counts a GC pass by its result.
func (m *Metrics) ObservePassResult(err error) {
	if err != nil {
		m.passes.WithLabelValues("error").Inc()
		return
	}
	m.passes.WithLabelValues("ok").Inc()
}

// observePass records a GC pass.
func (m *Metrics) observePass(res PassResult) {
	m.deleted.Add(float64(res.Deleted))
	m.deletedBytes.Add(float64(res.DeletedBytes))
	m.orphaned.Set(float64(res.OrphanedBytes))
	m.objects.Reset()
	m.objectBytes.Reset()
	for level, c := range res.Levels {
		l := strconv.Itoa(level)
		m.objects.WithLabelValues(l).Set(float64(c.Objects))
		m.objectBytes.WithLabelValues(l).Set(float64(c.Bytes))
	}
}
