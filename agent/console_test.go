package agent

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Every agent serves the console at / of its HTTP port, over the whole cluster, behind
// Config.ConsoleMiddleware; /metrics, /healthz and /readyz stay as they were.
func TestConsoleMounted(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	guard := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("key") != "k" {
				http.Error(w, "denied", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	a1 := startAgent(t, tc.newAgent("a1", func(c *Config) { c.ConsoleMiddleware = guard }))
	startAgent(t, tc.newAgent("a2", func(c *Config) { c.AZ = "az2" }))
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + a1.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/"); code != http.StatusForbidden {
		t.Errorf("/ without the key: %d, want the middleware's 403", code)
	}
	waitFor(t, "a1 to see a2", func() bool { return len(a1.cache.Agents()) == 2 })
	code, body := get("/?key=k")
	if code != http.StatusOK || !strings.Contains(body, `served by <b id="self">a1</b>`) || !strings.Contains(body, `data-agent="a2"`) {
		t.Errorf("/: %d\n%s", code, body)
	}
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, "streamhouse_cluster_agents 2") {
		t.Errorf("/metrics: %d, no streamhouse_cluster_agents 2", code)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
}

// With HTTP authentication (and HTTPS) on, the console's cluster rates still sum every agent's: an
// agent registers its HTTP URL and asks its peers' /api/rates with a header signed by the cluster
// secret, which a peer accepts for that path only, fresh, from a registered agent, and never for the
// cluster scope (a fan-in does not fan out again).
func TestConsolePeerRates(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	secure := func(c *Config) {
		f.listeners([]string{"admin"}, ProtocolSASLSSL)(c)
		c.Security.TLSClientCAFile, c.Security.TLSClientAuth = f.ca.CertFile, "requested"
		c.Security.HTTPAuth, c.Security.HTTPTLS = []string{HTTPAuthBasic}, true
	}
	a1 := tc.agent("a1", secure)
	a2 := tc.agent("a2", secure, func(c *Config) { c.AZ = "az2" })
	addUser(t, tc, "admin", "admin-secret", a1)
	waitFor(t, "a1 to see a2", func() bool { return len(a1.cache.Agents()) == 2 })
	for _, ag := range a1.cache.Agents() {
		if want := "https://" + map[string]string{"a1": a1.HTTPAddr(), "a2": a2.HTTPAddr()}[ag.ID]; ag.HTTP != want {
			t.Errorf("%s registered HTTP %q, want %q", ag.ID, ag.HTTP, want)
		}
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: f.clientTLS(t)}}
	do := func(a *Agent, path string, prepare func(*http.Request)) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "https://"+a.HTTPAddr()+path, nil)
		prepare(req)
		resp, err := cl.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := do(a1, "/api/rates?scope=cluster", func(r *http.Request) { r.SetBasicAuth("admin", "admin-secret") })
	var got struct {
		Agents []struct{ ID, State string }
	}
	if err := json.Unmarshal([]byte(body), &got); code != http.StatusOK || err != nil {
		t.Fatalf("cluster rates: %d %v\n%s", code, err, body)
	}
	if fmt.Sprint(got.Agents) != "[{a1 ok} {a2 ok}]" {
		t.Errorf("cluster rates' agents %v, want a1 and a2 ok", got.Agents)
	}

	signed := func(path string, at time.Duration) func(*http.Request) {
		return func(r *http.Request) {
			ms := time.Now().Add(at).UnixMilli()
			r.Header.Set(peerHeader, fmt.Sprintf("a1:%d:%x", ms, peerMAC(a1.secret, "a1", ms, path)))
		}
	}
	for _, c := range []struct {
		name, path string
		prepare    func(*http.Request)
		want       int
	}{
		{"signed", "/api/rates", signed("/api/rates", 0), 200},
		{"signed 20 s ago", "/api/rates", signed("/api/rates", -20*time.Second), 200},
		{"stale", "/api/rates", signed("/api/rates", -time.Minute), 401},
		{"another path", "/", signed("/", 0), 401},
		{"the cluster scope", "/api/rates?scope=cluster", signed("/api/rates", 0), 401},
		{"a forged MAC", "/api/rates", func(r *http.Request) {
			r.Header.Set(peerHeader, fmt.Sprintf("a1:%d:%x", time.Now().UnixMilli(), make([]byte, 32)))
		}, 401},
		{"an agent not registered", "/api/rates", func(r *http.Request) {
			ms := time.Now().UnixMilli()
			r.Header.Set(peerHeader, fmt.Sprintf("x9:%d:%x", ms, peerMAC(a1.secret, "x9", ms, "/api/rates")))
		}, 401},
		{"garbage", "/api/rates", func(r *http.Request) { r.Header.Set(peerHeader, "::") }, 401},
	} {
		if code, _ := do(a2, c.path, c.prepare); code != c.want {
			t.Errorf("%s: %d, want %d", c.name, code, c.want)
		}
	}
}
