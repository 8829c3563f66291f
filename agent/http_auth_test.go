package agent

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"testing"
)

// The HTTP port with basic and certificate authentication: probes stay open, /metrics and the console
// need a SCRAM user's password or a client certificate, and with ACLs on a principal allowed to describe
// the cluster (a super user here); others get 401 or 403.
func TestHTTPAuth(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	a := tc.agent("a1", f.listeners([]string{"admin", "CN=ops"}, ProtocolSASLSSL), func(c *Config) {
		c.Security.TLSClientCAFile, c.Security.TLSClientAuth = f.ca.CertFile, "requested"
		c.Security.HTTPAuth, c.Security.HTTPTLS = []string{HTTPAuthBasic, HTTPAuthTLS}, true
	})
	addUser(t, tc, "admin", "admin-secret", a)
	addUser(t, tc, "bob", "bob-secret", a)
	get := func(cfg *tls.Config, path, user, pass string) int {
		t.Helper()
		cl := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		req, _ := http.NewRequest("GET", "https://"+a.HTTPAddr()+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	plain := f.clientTLS(t)
	for _, c := range []struct {
		path, user, pass string
		want             int
	}{
		{"/healthz", "", "", 200},
		{"/readyz", "", "", 200},
		{"/metrics", "", "", 401},
		{"/metrics", "admin", "wrong", 401},
		{"/metrics", "nobody", "admin-secret", 401},
		{"/metrics", "bob", "bob-secret", 403},
		{"/metrics", "admin", "admin-secret", 200},
		// The console, behind the same check.
		{"/", "", "", 401},
		{"/topics", "bob", "bob-secret", 403},
		{"/api/rates", "nobody", "admin-secret", 401},
		{"/", "admin", "admin-secret", 200},
		{"/groups", "admin", "admin-secret", 200},
	} {
		if got := get(plain, c.path, c.user, c.pass); got != c.want {
			t.Errorf("%s as %q/%q: %d, want %d", c.path, c.user, c.pass, got, c.want)
		}
	}
	withCert := func(cn string) *tls.Config {
		files := f.ca.Client(t, pkix.Name{CommonName: cn})
		cfg := f.clientTLS(t)
		pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
		return cfg
	}
	if got := get(withCert("ops"), "/metrics", "", ""); got != 200 {
		t.Errorf("/metrics with the certificate of a super user: %d", got)
	}
	if got := get(withCert("intruder"), "/metrics", "", ""); got != 403 {
		t.Errorf("/metrics with the certificate of another: %d", got)
	}
}
