package agent

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// --metrics-addr serves /metrics, /healthz and /readyz on a listener of its own, plain and open, and
// the HTTP port (here behind basic authentication) no longer serves /metrics.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) {
		c.MetricsAddr = "127.0.0.1:0"
	})
	get := func(addr, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if a.MetricsAddr() == "" || a.MetricsAddr() == a.HTTPAddr() {
		t.Fatalf("metrics address %q, HTTP address %q", a.MetricsAddr(), a.HTTPAddr())
	}
	code, body := get(a.MetricsAddr(), "/metrics")
	if code != 200 || !strings.Contains(body, "streamhouse_") {
		t.Fatalf("/metrics on the metrics address: %d, %d bytes", code, len(body))
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, _ := get(a.MetricsAddr(), p); code != 200 {
			t.Errorf("%s on the metrics address: %d", p, code)
		}
	}
	if code, _ := get(a.MetricsAddr(), "/topics"); code != 404 {
		t.Errorf("the console on the metrics address: %d, want 404", code)
	}
	if code, _ := get(a.HTTPAddr(), "/metrics"); code == 200 {
		t.Errorf("/metrics still on the HTTP port: %d", code)
	}
	if code, _ := get(a.HTTPAddr(), "/healthz"); code != 200 {
		t.Errorf("/healthz on the HTTP port: %d", code)
	}
}

func TestMetricsAddressValidated(t *testing.T) {
	t.Parallel()
	cfg := NewConfig()
	cfg.ID, cfg.MetricsAddr = "a1", "no-port"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "metrics address") {
		t.Fatalf("Validate with --metrics-addr no-port: %v", err)
	}
}
