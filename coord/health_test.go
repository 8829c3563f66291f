package coord

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Health reports the member's quota, which the "etcd near quota" alert compares the database with.
func TestHealthReportsQuota(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
		QuotaBytes: 64 << 20, UnsafeNoFsync: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := Connect(ctx, Config{Endpoints: e.Endpoints(), Logger: testLogger(t), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	h, err := c.Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.DBQuota != 64<<20 || h.DBSize <= 0 || h.DBSize > h.DBQuota {
		t.Errorf("health = %+v, want a quota of 64 MiB above the database size", h)
	}
}
