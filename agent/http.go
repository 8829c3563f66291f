package agent

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The object store check behind /readyz: each is bounded by readyCheckTimeout, and one is made at most
// every readyCheckInterval, its answer served in between, so that however often the agent is probed,
// the bucket sees at most one HeadBucket per interval (each is a billed request).
const (
	readyCheckTimeout  = 2 * time.Second
	readyCheckInterval = 5 * time.Second
)

// storeCheck is the cached result of the last object store check; concurrent probes share one check.
type storeCheck struct {
	now     func() time.Time
	mu      sync.Mutex
	at      time.Time // of the last check; zero: none yet
	err     error
	running chan struct{} // closed when the check in flight ends; nil when none is
}

// reset forgets the cached answer.
func (s *storeCheck) reset() {
	s.mu.Lock()
	s.at = time.Time{}
	s.mu.Unlock()
}

// check returns the cached answer while it is fresh, else the answer of a new check: the first probe
// to find it stale runs the check, on no probe's context (others wait for it), and the others wait.
func (s *storeCheck) check(ctx context.Context, run func(context.Context) error) error {
	s.mu.Lock()
	if !s.at.IsZero() && s.now().Sub(s.at) < readyCheckInterval {
		defer s.mu.Unlock()
		return s.err
	}
	if running := s.running; running != nil {
		s.mu.Unlock()
		select {
		case <-running:
		case <-ctx.Done():
			return ctx.Err()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.err
	}
	done := make(chan struct{})
	s.running = done
	s.mu.Unlock()
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyCheckTimeout)
	err := run(cctx)
	cancel()
	s.mu.Lock()
	s.at, s.err, s.running = s.now(), err, nil
	s.mu.Unlock()
	close(done)
	return err
}

// newHTTPServer serves /healthz (the process is alive), /readyz (registered in etcd and the object store
// reachable; 503 otherwise), /metrics and the console.
func (a *Agent) newHTTPServer() *http.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", a.serveReady)
	g := a.cfg.Gatherer
	if g == nil {
		g = prometheus.NewRegistry()
	}
	if a.cfg.MetricsAddr == "" { // otherwise on its own listener (metrics_http.go)
		mux.Handle("/metrics", a.RequireHTTPAuth(promhttp.HandlerFor(g, promhttp.HandlerOpts{})))
	}
	a.mountConsole(mux) // "/": console/, behind the same authentication
	return &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
}

func (a *Agent) serveReady(w http.ResponseWriter, r *http.Request) {
	if !a.ready.Load() || a.stopping.Load() {
		http.Error(w, "not ready: starting or stopping", http.StatusServiceUnavailable)
		return
	}
	if reason := a.listen.notAccepting(); reason != "" {
		http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
		return
	}
	if a.lead.session() == nil {
		http.Error(w, "not ready: not registered in etcd (session lost)", http.StatusServiceUnavailable)
		return
	}
	if reason := a.etcdHealth.notReady(time.Now()); reason != "" {
		http.Error(w, "not ready: "+reason, http.StatusServiceUnavailable)
		return
	}
	if err := a.readyCheck.check(r.Context(), a.store.Check); err != nil {
		http.Error(w, "not ready: object store: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}
