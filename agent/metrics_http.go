package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrapeHTTP is the listener of --metrics-addr: /metrics, /healthz and /readyz, plain HTTP without
// authentication, for an interface only Prometheus reaches (docs/INTERNALS.md, "The HTTP port").
type scrapeHTTP struct {
	ln  net.Listener
	srv *http.Server
}

// listenMetrics binds --metrics-addr, when set.
func (a *Agent) listenMetrics() error {
	if a.cfg.MetricsAddr == "" {
		return nil
	}
	ln, err := net.Listen("tcp", a.cfg.MetricsAddr)
	if err != nil {
		return fmt.Errorf("agent: metrics listener: %w", err)
	}
	a.scrape.ln = ln
	return nil
}

// serveMetrics serves the metrics listener until closeMetrics.
func (a *Agent) serveMetrics() {
	if a.scrape.ln == nil {
		return
	}
	g := a.cfg.Gatherer
	if g == nil {
		g = prometheus.NewRegistry()
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", a.serveReady)
	a.scrape.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	srv, ln := a.scrape.srv, a.scrape.ln
	a.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("metrics server failed", "error", err)
		}
	})
}

// closeMetrics stops the metrics listener.
func (a *Agent) closeMetrics() {
	switch {
	case a.scrape.srv != nil:
		a.scrape.srv.Close()
	case a.scrape.ln != nil:
		a.scrape.ln.Close()
	}
}

// MetricsAddr is the bound address of --metrics-addr (valid after Start; empty when not set).
func (a *Agent) MetricsAddr() string {
	if a.scrape.ln == nil {
		return ""
	}
	return a.scrape.ln.Addr().String()
}
