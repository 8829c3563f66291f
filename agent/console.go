package agent

import (
	"net/http"

	"github.com/streamhouse/streamhouse/console"
)

// mountConsole serves the web console at "/" of the HTTP port, behind the port's authentication, and
// follows the view for it until the agent stops. A console that cannot be built is logged and left out: /healthz, /readyz and /metrics
// matter more.
func (a *Agent) mountConsole(mux *http.ServeMux) {
	con, err := console.New(console.Config{View: a.cache, Groups: a.etcd, Metrics: a.cfg.Gatherer, Registerer: a.cfg.Registerer,
		Self: a.cfg.ID, Middleware: a.consoleMiddleware, Logger: a.log})
	if err != nil {
		a.log.Error("console disabled", "error", err)
		return
	}
	mux.Handle("/", con.Handler())
	a.wg.Go(func() { con.Run(a.runCtx) })
}

// consoleMiddleware puts the console behind the HTTP port's authentication (RequireHTTPAuth, as
// /metrics), then Config.ConsoleMiddleware if any.
func (a *Agent) consoleMiddleware(h http.Handler) http.Handler {
	h = a.RequireHTTPAuth(h)
	if a.cfg.ConsoleMiddleware != nil {
		h = a.cfg.ConsoleMiddleware(h)
	}
	return h
}
