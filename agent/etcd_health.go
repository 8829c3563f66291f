package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
)

// etcd must never wedge the cluster unseen (docs/INTERNALS.md, "etcd health"): every agent asks etcd
// for its health every etcdHealthInterval and exports it; while etcd reports an alarm (NOSPACE refuses
// every write, commits and leader acquisitions included), or the agent's last commit failed not long
// ago, /readyz answers 503 with the reason, and one log line says when it starts and when it ends. The
// agents recover by themselves once etcd takes writes again: failed acquisitions are retried
// (runLeadership), and an alarm cleared is seen within an interval.

// etcdHealthInterval is how often an agent asks etcd for its health: a status, an alarm list and a
// key count, three cheap reads.
const etcdHealthInterval = 10 * time.Second

// commitFailureWindow is how long a failed commit keeps /readyz red when nothing commits since.
const commitFailureWindow = 30 * time.Second

// etcdHealth is what an agent knows of etcd's health.
type etcdHealth struct {
	kick       chan struct{} // a commit failed: check now, not at the next interval
	mu         sync.Mutex
	alarms     []string
	commitErr  error
	commitTime time.Time // when commitErr happened
	metrics    etcdHealthMetrics
}

type etcdHealthMetrics struct {
	dbSize, dbInUse, keys prometheus.Gauge
	dbQuota               prometheus.Gauge
	alarm                 *prometheus.GaugeVec
}

func newEtcdHealthMetrics(reg prometheus.Registerer) etcdHealthMetrics {
	m := etcdHealthMetrics{
		dbSize: prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamhouse_etcd_db_size_bytes",
			Help: "Bytes of etcd's backend database, as the first member that answers reports it: compare with its --quota-backend-bytes."}),
		dbInUse: prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamhouse_etcd_db_size_in_use_bytes",
			Help: "Bytes of etcd's backend database in use; the rest is free pages a defragmentation returns."}),
		dbQuota: prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamhouse_etcd_db_quota_bytes",
			Help: "etcd's --quota-backend-bytes, as the first member that answers reports it (0: not reported): past it etcd raises NOSPACE."}),
		keys: prometheus.NewGauge(prometheus.GaugeOpts{Name: "streamhouse_etcd_keys",
			Help: "Keys under StreamHouse's etcd prefix."}),
		alarm: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamhouse_etcd_alarm",
			Help: "1 while etcd reports an alarm of the type (NOSPACE: it refuses every write), 0 otherwise."}, []string{"type"}),
	}
	for _, t := range []string{"NOSPACE", "CORRUPT"} {
		m.alarm.WithLabelValues(t)
	}
	if reg != nil {
		reg.MustRegister(m.dbSize, m.dbInUse, m.dbQuota, m.keys, m.alarm)
	}
	return m
}

// notReady says why etcd keeps the agent from being ready, or "".
func (h *etcdHealth) notReady(now time.Time) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case len(h.alarms) > 0:
		return "etcd alarm " + strings.Join(h.alarms, ", ") + ": etcd refuses writes until it is disarmed (docs/OPERATING.md)"
	case h.commitErr != nil && now.Sub(h.commitTime) < commitFailureWindow:
		return "etcd refused the last index commit: " + h.commitErr.Error()
	}
	return ""
}

// commitResult records the outcome of an index commit.
func (h *etcdHealth) commitResult(err error, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.commitErr, h.commitTime = err, now
}

// runEtcdHealth asks etcd for its health every etcdHealthInterval until ctx ends.
func (a *Agent) runEtcdHealth(ctx context.Context) {
	t := time.NewTicker(etcdHealthInterval)
	defer t.Stop()
	for {
		a.checkEtcdHealth(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.etcdHealth.kick:
		}
	}
}

// checkEtcdHealth asks once, exports the figures, and logs an alarm raised or cleared.
func (a *Agent) checkEtcdHealth(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, etcdHealthInterval)
	defer cancel()
	h, err := a.etcd.Health(cctx)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Debug("etcd health check failed", "error", err)
		}
		return
	}
	m := a.etcdHealth.metrics
	m.dbSize.Set(float64(h.DBSize))
	m.dbInUse.Set(float64(h.DBSizeInUse))
	m.dbQuota.Set(float64(h.DBQuota))
	m.keys.Set(float64(h.Keys))
	m.alarm.Reset()
	for _, t := range []string{"NOSPACE", "CORRUPT"} {
		m.alarm.WithLabelValues(t).Set(0)
	}
	for _, t := range h.Alarms {
		m.alarm.WithLabelValues(t).Set(1)
	}
	a.etcdHealth.mu.Lock()
	before := strings.Join(a.etcdHealth.alarms, ", ")
	a.etcdHealth.alarms = h.Alarms
	a.etcdHealth.mu.Unlock()
	switch after := strings.Join(h.Alarms, ", "); {
	case after != "" && after != before:
		a.log.Error("etcd raised an alarm: it refuses writes (commits, leader acquisitions, registrations) until space is freed "+
			"and the alarm disarmed; /readyz answers 503 meanwhile (docs/OPERATING.md)", "alarms", after, "db_size", h.DBSize)
	case after == "" && before != "":
		a.log.Info("etcd alarm cleared: writes are taken again", "was", before)
	}
}

// noteCommits records the outcome of a round of index commits for /readyz: the first failure other
// than a fence (a fence is a lost leadership, not etcd's health), or success.
func (a *Agent) noteCommits(errs []error) {
	var failed error
	for _, err := range errs {
		if err != nil && !errors.Is(err, coord.ErrFenced) {
			failed = err
			break
		}
	}
	a.etcdHealth.commitResult(failed, time.Now())
	if failed != nil {
		select {
		case a.etcdHealth.kick <- struct{}{}:
		default:
		}
	}
}
