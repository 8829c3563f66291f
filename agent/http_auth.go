package agent

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/streamhouse/streamhouse/auth"
)

// The HTTP port behind authentication (docs/INTERNALS.md, "The HTTP port"): /healthz and /readyz
// stay open (probes), everything else (/metrics, and what other packages mount through
// RequireHTTPAuth) needs a principal: a SCRAM user's name and password (HTTP basic authentication,
// checked as SASL PLAIN checks it) or a client certificate of the client CA (its principal as on the
// Kafka listeners). With authorization on, the principal must also be allowed Describe on the
// cluster (super users are).

// HTTP authentication methods (--http-auth).
const (
	HTTPAuthBasic = "basic"
	HTTPAuthTLS   = "tls"
)

// httpAuthOn tells whether the HTTP port authenticates.
func (s *SecurityConfig) httpAuthOn() bool { return len(s.HTTPAuth) > 0 }

func (s *SecurityConfig) validateHTTP() error {
	for _, m := range s.HTTPAuth {
		if m != HTTPAuthBasic && m != HTTPAuthTLS {
			return fmt.Errorf("agent: HTTP authentication %q (want basic or tls)", m)
		}
	}
	switch {
	case (s.HTTPTLS || slices.Contains(s.HTTPAuth, HTTPAuthTLS)) && (s.TLSCertFile == "" || s.TLSKeyFile == ""):
		return fmt.Errorf("agent: HTTPS needs the TLS certificate and key files")
	case slices.Contains(s.HTTPAuth, HTTPAuthTLS) && (!s.HTTPTLS || s.TLSClientCAFile == ""):
		return fmt.Errorf("agent: HTTP authentication by client certificate needs HTTPS and a client CA file")
	}
	return nil
}

// secureHTTPListener serves HTTPS on ln when asked: the listeners' certificate, and client
// certificates of the client CA verified when given (never required: probes have none).
func (a *Agent) secureHTTPListener(ln net.Listener) (net.Listener, error) {
	s := &a.cfg.Security
	if !s.HTTPTLS {
		return ln, nil
	}
	clientAuth := auth.ClientAuthNone
	if s.TLSClientCAFile != "" {
		clientAuth = auth.ClientAuthRequested
	}
	cfg, err := auth.ServerTLS(auth.TLSConfig{CertFile: s.TLSCertFile, KeyFile: s.TLSKeyFile, ClientCAFile: s.TLSClientCAFile,
		ClientAuth: clientAuth, Logger: a.log, Metrics: a.tlsMetrics})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("agent: http listener: %w", err)
	}
	return tls.NewListener(ln, cfg), nil
}

// HTTPPrincipal is who an HTTP request authenticated as, by the configured methods; false when it
// did not. Without HTTP authentication every request is User:ANONYMOUS.
func (a *Agent) HTTPPrincipal(r *http.Request) (auth.Principal, bool) {
	s := &a.cfg.Security
	if !s.httpAuthOn() {
		return auth.Anonymous, true
	}
	if slices.Contains(s.HTTPAuth, HTTPAuthTLS) && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		if p, err := auth.TLSPrincipal(*r.TLS, a.sec.rules); err == nil {
			return p, true
		}
	}
	if user, pass, ok := r.BasicAuth(); ok && slices.Contains(s.HTTPAuth, HTTPAuthBasic) {
		p, err := auth.CheckPassword(a.cache, user, pass)
		if err == nil {
			return p, true
		}
		a.log.Info("HTTP authentication failed", "client", r.RemoteAddr, "error", err)
	}
	return auth.Principal{}, false
}

// RequireHTTPAuth lets through only requests HTTPPrincipal authenticates and, with authorization
// on, whose principal may Describe the cluster: 401 (with a basic challenge) or 403 otherwise. Other
// packages mounting handlers on the HTTP port (the console) wrap them with it.
func (a *Agent) RequireHTTPAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.HTTPPrincipal(r)
		if !ok {
			if slices.Contains(a.cfg.Security.HTTPAuth, HTTPAuthBasic) {
				w.Header().Set("WWW-Authenticate", `Basic realm="streamhouse", charset="UTF-8"`)
			}
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		if a.sec.authz != nil && a.cfg.Security.httpAuthOn() && !a.sec.authz.Authorize(auth.Request{Principal: p,
			Host: hostOfRemote(r.RemoteAddr), Operation: auth.OpDescribe, Resource: auth.ResourceCluster, Name: auth.ClusterName}) {
			http.Error(w, "forbidden: "+p.String()+" may not describe the cluster", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ParseHTTPAuth reads --http-auth: methods, comma-separated ("basic", "tls").
func ParseHTTPAuth(s string) []string {
	var out []string
	for _, m := range splitComma(s) {
		out = append(out, strings.ToLower(m))
	}
	return out
}
