package coord

import (
	"context"
	"testing"
	"time"
)

func startTestEmbedded(t *testing.T, dir string) *Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// Data survives a restart on the same directory, although port 0 gives the member other
// addresses than the ones its data directory recorded.
func TestEmbeddedRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	e := startTestEmbedded(t, dir)
	first := e.Endpoints()[0]
	c, err := Connect(testCtx(t), Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	top, err := c.CreateTopic(testCtx(t), Topic{Name: "durable", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	e.Close()
	e.Close() // safe twice

	e = startTestEmbedded(t, dir)
	if e.Endpoints()[0] == first {
		t.Logf("restart happened to reuse %s", first)
	}
	c, err = Connect(testCtx(t), Config{Endpoints: e.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Topic(testCtx(t), "durable")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != top.ID || got.Partitions != 3 {
		t.Fatalf("after restart: %+v, want %+v", got, top)
	}
}

func TestEmbeddedNeedsDir(t *testing.T) {
	if _, err := StartEmbedded(context.Background(), EmbedConfig{}); err == nil {
		t.Fatal("started without a data directory")
	}
}

// The embedded etcd allows DefaultEmbedMaxTxnOps operations per Txn unless told otherwise, and never
// fewer than etcd's default, which clients fall back to.
func TestEmbeddedMaxTxnOps(t *testing.T) {
	for _, tc := range []struct {
		in, want int
		bad      bool
	}{{in: 0, want: DefaultEmbedMaxTxnOps}, {in: 1024, want: 1024}, {in: DefaultMaxTxnOps, want: DefaultMaxTxnOps}, {in: 64, bad: true}, {in: -1, bad: true}} {
		cfg := EmbedConfig{Dir: t.TempDir(), MaxTxnOps: tc.in}
		err := cfg.Validate()
		if tc.bad {
			if err == nil {
				t.Errorf("MaxTxnOps %d accepted", tc.in)
			}
			continue
		}
		if err != nil {
			t.Fatalf("MaxTxnOps %d: %v", tc.in, err)
		}
		ec, err := cfg.etcdConfig()
		if err != nil {
			t.Fatal(err)
		}
		if ec.MaxTxnOps != uint(tc.want) {
			t.Errorf("MaxTxnOps %d: etcd's --max-txn-ops %d, want %d", tc.in, ec.MaxTxnOps, tc.want)
		}
	}
}

// The embedded etcd takes requests of DefaultEmbedMaxRequestBytes unless told otherwise, and never
// less than etcd's default, which clients fall back to.
func TestEmbeddedMaxRequestBytes(t *testing.T) {
	for _, tc := range []struct {
		in, want int64
		bad      bool
	}{
		{in: 0, want: DefaultEmbedMaxRequestBytes}, {in: 8 << 20, want: 8 << 20}, {in: DefaultMaxRequestBytes, want: DefaultMaxRequestBytes},
		{in: 1 << 20, bad: true}, {in: -1, bad: true}, {in: 4 << 30, bad: true},
	} {
		cfg := EmbedConfig{Dir: t.TempDir(), MaxRequestBytes: tc.in}
		err := cfg.Validate()
		if tc.bad {
			if err == nil {
				t.Errorf("MaxRequestBytes %d accepted", tc.in)
			}
			continue
		}
		if err != nil {
			t.Fatalf("MaxRequestBytes %d: %v", tc.in, err)
		}
		ec, err := cfg.etcdConfig()
		if err != nil {
			t.Fatal(err)
		}
		if ec.MaxRequestBytes != uint(tc.want) {
			t.Errorf("MaxRequestBytes %d: etcd's --max-request-bytes %d, want %d", tc.in, ec.MaxRequestBytes, tc.want)
		}
	}
}

// Config.MaxRequestBytes defaults to etcd's default and takes MinMaxRequestBytes to
// MaxMaxRequestBytes.
func TestConfigMaxRequestBytes(t *testing.T) {
	for in, want := range map[int64]int64{0: DefaultMaxRequestBytes, -5: DefaultMaxRequestBytes, 4 << 20: 4 << 20,
		MinMaxRequestBytes: MinMaxRequestBytes, MinMaxRequestBytes - 1: 0, MaxMaxRequestBytes + 1: 0} {
		cfg := Config{Endpoints: []string{"127.0.0.1:2379"}, MaxRequestBytes: in}
		err := cfg.Validate()
		if want == 0 {
			if err == nil {
				t.Errorf("MaxRequestBytes %d accepted", in)
			}
			continue
		}
		if err != nil || cfg.MaxRequestBytes != want {
			t.Errorf("MaxRequestBytes %d: %d, %v; want %d", in, cfg.MaxRequestBytes, err, want)
		}
	}
	if got := txnBytes(DefaultMaxRequestBytes); got != 1<<20 {
		t.Errorf("Txn budget at etcd's default request size: %d, want 1 MiB", got)
	}
}
