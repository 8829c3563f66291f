package agent

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readyCheckTimeout bounds the object store check behind /readyz.
const readyCheckTimeout = 2 * time.Second

// newHTTPServer serves /healthz (the process is alive), /readyz (registered in etcd and the object store
// reachable; 503 otherwise) and /metrics.
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
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
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
	if a.session() == nil {
		http.Error(w, "not ready: not registered in etcd (session lost)", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyCheckTimeout)
	defer cancel()
	if err := a.store.Check(ctx); err != nil {
		http.Error(w, "not ready: object store: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}
