package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
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
