package agent

import (
	"errors"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/segstore"
)

// /readyz asks the object store at most once per readyCheckInterval and serves the answer it got in
// between, a failure as well as a success: probing an agent must not turn into S3 requests (each
// HeadBucket is billed).
func TestReadyzCachesStoreCheck(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := startAgent(t, tc.newAgent("a1"))
	var checks atomic.Int64
	var failing atomic.Bool
	tc.store.SetFault(segstore.OpCheck, func(string) error {
		checks.Add(1)
		if failing.Load() {
			return errors.New("bucket unreachable")
		}
		return nil
	})
	now := time.Now()
	a.readyCheck.now = func() time.Time { return now }
	a.readyCheck.reset()

	for range 20 {
		if code, body := readyz(t, a); code != http.StatusOK {
			t.Fatalf("/readyz = %d %s", code, body)
		}
	}
	if n := checks.Load(); n != 1 {
		t.Fatalf("20 probes within the interval made %d object store checks, want 1", n)
	}
	failing.Store(true)
	if code, _ := readyz(t, a); code != http.StatusOK {
		t.Fatalf("/readyz = %d within the interval, want the cached 200", code)
	}
	now = now.Add(readyCheckInterval)
	for range 3 {
		if code, body := readyz(t, a); code != http.StatusServiceUnavailable || !strings.Contains(body, "bucket unreachable") {
			t.Fatalf("/readyz = %d %q after the interval, want 503 naming the store's error", code, body)
		}
	}
	if n := checks.Load(); n != 2 {
		t.Fatalf("object store checks = %d, want 2", n)
	}
}
