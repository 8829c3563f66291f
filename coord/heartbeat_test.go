package coord

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// heartbeatAge gathers streamhouse_agent_heartbeat_age_seconds from reg; ok is false when absent.
func heartbeatAge(t *testing.T, reg *prometheus.Registry) (age float64, ok bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "streamhouse_agent_heartbeat_age_seconds" {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// waitFor polls cond until it holds: the renewals it waits on are etcd's, with no event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHeartbeat(t *testing.T) {
	te := newTestEtcd(t)
	reg := prometheus.NewRegistry()
	c := te.client(t, func(cfg *Config) { cfg.Registerer = reg })
	if _, ok := heartbeatAge(t, reg); ok {
		t.Fatal("heartbeat age exported before any session registered")
	}

	before := time.Now()
	// A 3s lease is renewed every second.
	s, err := c.Register(testCtx(t), AgentInfo{ID: "a", Addr: "x:1"}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	granted := s.LastKeepAlive()
	if granted.Before(before) || granted.After(time.Now()) {
		t.Fatalf("LastKeepAlive %v right after Register, want the grant time", granted)
	}
	waitFor(t, "a lease renewal", func() bool { return s.LastKeepAlive().After(granted) })
	if age, ok := heartbeatAge(t, reg); !ok || age < 0 || age >= 3 {
		t.Fatalf("heartbeat age = %v (exported %v), want in [0, 3)", age, ok)
	}

	// Close stops the watch (and with it any renewal) before revoking.
	if err := s.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitChan(t, s.hb.done, "the keep-alive watch to end") // Close waited: already closed
	ttl, err := c.Etcd().TimeToLive(testCtx(t), s.LeaseID())
	if err != nil || ttl.TTL > 0 {
		t.Fatalf("lease after Close: TTL %d, %v; want revoked", ttl.TTL, err)
	}

	// The gauge follows the client's latest session.
	s2 := newSession(t, c, "a", "x:1")
	if got := c.metrics.heartbeat.cur.Load(); got != s2 {
		t.Fatal("gauge does not follow the new session")
	}
}

func TestHeartbeatEndsWithLease(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	// A 1s lease: the next renewal, a third of a second away, learns the lease is gone.
	s, err := c.Register(testCtx(t), AgentInfo{ID: "a", Addr: "x:1"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	if _, err := c.Etcd().Revoke(testCtx(t), s.LeaseID()); err != nil {
		t.Fatal(err)
	}
	// Without Close, the watch ends by itself once clientv3 learns the lease is gone.
	waitChan(t, s.hb.done, "the keep-alive watch to end after the lease was revoked")
	last := s.LastKeepAlive()
	waitChan(t, s.Done(), "Done")
	if !s.LastKeepAlive().Equal(last) {
		t.Fatal("LastKeepAlive advanced after the lease was lost")
	}
}

// Two clients on one Registerer share the gauge, as they share their other series.
func TestHeartbeatGaugeShared(t *testing.T) {
	te := newTestEtcd(t)
	reg := prometheus.NewRegistry()
	c1 := te.client(t, func(cfg *Config) { cfg.Registerer = reg })
	c2 := te.client(t, func(cfg *Config) { cfg.Registerer = reg })
	if c1.metrics.heartbeat != c2.metrics.heartbeat {
		t.Fatal("second client got a gauge of its own")
	}
	newSession(t, c2, "b", "x:2")
	if _, ok := heartbeatAge(t, reg); !ok {
		t.Fatal("no heartbeat age after the second client registered")
	}
}
