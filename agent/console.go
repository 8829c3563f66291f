package agent

import (
	"net/http"

	"github.com/streamhouse/streamhouse/console"
)

// mountConsole serves the web console at "/" of the HTTP port and follows the view for it until the
// agent stops. A console that cannot be built is logged and left out: /healthz, /readyz and /metrics
// matter more.
func (a *Agent) mountConsole(mux *http.ServeMux) {
	mw := a.RequireHTTPAuth
	if m := a.cfg.ConsoleMiddleware; m != nil {
		mw = func(h http.Handler) http.Handler { return a.RequireHTTPAuth(m(h)) }
	}
	con, err := console.New(console.Config{View: a.cache, Groups: a.etcd, Metrics: a.cfg.Gatherer, Registerer: a.cfg.Registerer,
		Self: a.cfg.ID, Middleware: mw, Logger: a.log})
	if err != nil {
		a.log.Error("console disabled", "error", err)
		return
	}
	mux.Handle("/", con.Handler())
	a.wg.Go(func() { con.Run(a.runCtx) })
}
