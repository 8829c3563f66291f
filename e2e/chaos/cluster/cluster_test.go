package cluster

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// bins are the streamhouse and etcdmember binaries TestMain builds; empty under -short.
var bins struct{ streamhouse, etcd string }

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "streamhouse-chaos-cluster-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bins.streamhouse, bins.etcd = filepath.Join(dir, "streamhouse"), filepath.Join(dir, "etcdmember")
	for out, pkg := range map[string]string{bins.streamhouse: "../../../cmd/streamhouse", bins.etcd: "../cmd/etcdmember"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	return m.Run()
}

func startCluster(t *testing.T) *Cluster {
	t.Helper()
	if bins.streamhouse == "" {
		t.Skip("starts processes: skipped under -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{Dir: t.TempDir(), Bin: bins.streamhouse, EtcdBin: bins.etcd, Seed: 1, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// The controls the faults use, each followed by a return to health: an etcd leader killed and
// restarted, an agent killed and restarted on its addresses, an agent added and removed.
func TestClusterControls(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if got := c.Agents(); len(got) != 3 || len(c.Brokers()) != 3 {
		t.Fatalf("agents %v, brokers %v", got, c.Brokers())
	}

	leader, err := c.EtcdLeader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.KillMember(leader); err != nil {
		t.Fatal(err)
	}
	if c.Healthy(ctx) == nil {
		t.Errorf("healthy with etcd member %s killed", leader)
	}
	if err := c.StartMember(ctx, leader); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}

	if err := c.KillAgent("a1"); err != nil {
		t.Fatal(err)
	}
	if c.Healthy(ctx) == nil {
		t.Error("healthy with agent a1 killed")
	}
	if err := c.StartAgent(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}

	id, err := c.AddAgent(ctx)
	if err != nil || id != "a4" {
		t.Fatalf("AddAgent: %q, %v", id, err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveAgent(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c.Agents(); len(got) != 3 {
		t.Errorf("agents after removing %s: %v", id, got)
	}
}
