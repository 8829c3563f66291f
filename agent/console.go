package agent

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/console"
	"github.com/streamhouse/streamhouse/coord"
)

// The console's fan-in of rates between agents (docs/INTERNALS.md, "The console"): with HTTP
// authentication on, an agent asks a peer's /api/rates with a header proving it holds the cluster
// secret, which the peer accepts for that one path only.
const (
	peerHeader = "X-Streamhouse-Peer"
	peerLabel  = "streamhouse console peer v1"
	peerPath   = "/api/rates"
	// peerWindow is how far a peer header's time may be from this agent's clock.
	peerWindow = 30 * time.Second
)

// mountConsole serves the web console at "/" of the HTTP port, behind the port's authentication, and
// follows the view for it until the agent stops. A console that cannot be built is logged and left out: /healthz, /readyz and /metrics
// matter more.
func (a *Agent) mountConsole(mux *http.ServeMux) {
	con, err := console.New(console.Config{View: a.cache, Groups: a.etcd, Metrics: a.cfg.Gatherer, Registerer: a.cfg.Registerer,
		Self: a.cfg.ID, Middleware: a.consoleMiddleware, Logger: a.log, Peer: a.signPeer, PeerClient: a.peerClient()})
	if err != nil {
		a.log.Error("console disabled", "error", err)
		return
	}
	mux.Handle("/", con.Handler())
	a.wg.Go(func() { con.Run(a.runCtx) })
}

// consoleMiddleware puts the console behind the HTTP port's authentication (RequireHTTPAuth, as
// /metrics), except a peer's signed request for this agent's rates; then Config.ConsoleMiddleware if
// any.
func (a *Agent) consoleMiddleware(h http.Handler) http.Handler {
	authed := a.RequireHTTPAuth(h)
	var out http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.cfg.Security.httpAuthOn() && a.peerAllowed(r, time.Now()) {
			h.ServeHTTP(w, r)
			return
		}
		authed.ServeHTTP(w, r)
	})
	if a.cfg.ConsoleMiddleware != nil {
		out = a.cfg.ConsoleMiddleware(out)
	}
	return out
}

// httpAdvertised is the HTTP port's base URL as other agents reach it (registered as AgentInfo.HTTP):
// the bound address or, bound to every interface, the advertised Kafka host with the bound port.
func (a *Agent) httpAdvertised() string {
	if a.httpLn == nil {
		return ""
	}
	scheme := "http://"
	if a.cfg.Security.HTTPTLS {
		scheme = "https://"
	}
	return scheme + advertisedInternal(a.httpLn.Addr().String(), a.cfg.AdvertisedAddr)
}

// peerClient sends the console's fan-in requests: over HTTPS, peers' certificates are checked against
// the system roots and the client CA (the CA operators sign agents' certificates with).
func (a *Agent) peerClient() *http.Client {
	if !a.cfg.Security.HTTPTLS {
		return &http.Client{}
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if f := a.cfg.Security.TLSClientCAFile; f != "" {
		if pem, err := os.ReadFile(f); err != nil || !pool.AppendCertsFromPEM(pem) {
			a.log.Warn("console: the client CA is not trusted for peers' HTTPS", "file", f, "error", err)
		}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

// signPeer adds the peer header to a fan-in request, when peers authenticate HTTP requests.
func (a *Agent) signPeer(r *http.Request) {
	if !a.cfg.Security.httpAuthOn() {
		return
	}
	ms := time.Now().UnixMilli()
	r.Header.Set(peerHeader, a.cfg.ID+":"+strconv.FormatInt(ms, 10)+":"+hex.EncodeToString(peerMAC(a.secret, a.cfg.ID, ms, r.URL.Path)))
}

// peerAllowed tells whether r is a registered agent's signed GET of this agent's own rates, made within
// peerWindow of now.
func (a *Agent) peerAllowed(r *http.Request, now time.Time) bool {
	v := r.Header.Get(peerHeader)
	if v == "" || r.Method != http.MethodGet || r.URL.Path != peerPath || r.URL.RawQuery != "" || len(a.secret) == 0 {
		return false
	}
	rest, macHex, ok := cutLast(v)
	id, msText, ok2 := cutLast(rest)
	ms, err := strconv.ParseInt(msText, 10, 64)
	mac, err2 := hex.DecodeString(macHex)
	if !ok || !ok2 || err != nil || err2 != nil {
		return false
	}
	if d := now.Sub(time.UnixMilli(ms)); d > peerWindow || d < -peerWindow {
		return false
	}
	if !slices.ContainsFunc(a.cache.Agents(), func(ag coord.AgentInfo) bool { return ag.ID == id }) {
		return false
	}
	return hmac.Equal(mac, peerMAC(a.secret, id, ms, r.URL.Path))
}

// cutLast splits s at its last colon (agent ids may hold colons; the time and the MAC do not).
func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

func peerMAC(secret []byte, id string, ms int64, path string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(peerLabel + "|" + id + "|" + strconv.FormatInt(ms, 10) + "|" + path))
	return m.Sum(nil)
}
