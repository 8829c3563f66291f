package coord

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// heartbeat records when the session's lease was last renewed. concurrency.Session renews the
// lease but tells nobody when a renewal lands, so the session watches the lease with a second
// KeepAlive of its own. That costs no request and cannot slow the session: clientv3 runs one
// keep-alive per lease however many callers ask, fans each answer out to every caller's channel,
// and drops it for a channel that is not being read.
type heartbeat struct {
	last   atomic.Pointer[time.Time] // keeps the monotonic reading: ages survive wall-clock jumps
	cancel context.CancelFunc
	done   chan struct{} // closed when the watching goroutine has returned
}

// startHeartbeat starts watching the lease's renewals; granted is when the lease was granted,
// its first renewal. The goroutine ends when the lease is lost or the client closes (clientv3
// closes the channel) or when Close calls stopHeartbeat.
func (s *Session) startHeartbeat(granted time.Time) error {
	s.hb.last.Store(&granted)
	// The client's context, not Register's: the watch outlives Register, like the session.
	ctx, cancel := context.WithCancel(s.c.etcd.Ctx())
	acks, err := s.c.etcd.KeepAlive(ctx, s.LeaseID())
	if err != nil {
		cancel()
		return err
	}
	s.hb.cancel, s.hb.done = cancel, make(chan struct{})
	go func() {
		defer close(s.hb.done)
		for range acks { // clientv3 forwards only renewals: an expired lease closes the channel
			now := time.Now()
			s.hb.last.Store(&now)
		}
	}()
	return nil
}

// stopHeartbeat ends the watch and waits for its goroutine. It must run before the lease is
// revoked: while our KeepAlive is registered, clientv3 keeps renewing the lease.
func (s *Session) stopHeartbeat() {
	if s.hb.cancel == nil {
		return
	}
	s.hb.cancel()
	<-s.hb.done
}

// LastKeepAlive is when etcd last confirmed a renewal of the session's lease (at first, when the
// lease was granted). It stops advancing once the lease is lost or the session closed.
func (s *Session) LastKeepAlive() time.Time { return *s.hb.last.Load() }

// heartbeatGauge exports streamhouse_agent_heartbeat_age_seconds: the seconds since the current
// session's last renewal. Metrics are registered once per Client while sessions come and go (an
// agent re-registers after losing its lease), so the gauge follows whichever session registered
// last and computes the age when scraped. Clients sharing a Registerer share one gauge (see
// register), which then follows the latest session of any of them. Until a session registers it
// exports nothing: an age of 0 would claim a fresh heartbeat. After the session ends the age
// keeps growing, which is the truth: nothing renews the lease any more.
type heartbeatGauge struct {
	desc *prometheus.Desc
	cur  atomic.Pointer[Session]
}

func newHeartbeatGauge() *heartbeatGauge {
	return &heartbeatGauge{desc: prometheus.NewDesc("streamhouse_agent_heartbeat_age_seconds",
		"Seconds since etcd last confirmed a renewal of the agent's session lease; past the lease TTL the agent has lost its partitions.",
		nil, nil)}
}

// follow makes the gauge report s.
func (g *heartbeatGauge) follow(s *Session) { g.cur.Store(s) }

func (g *heartbeatGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *heartbeatGauge) Collect(ch chan<- prometheus.Metric) {
	if s := g.cur.Load(); s != nil {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, time.Since(s.LastKeepAlive()).Seconds())
	}
}
