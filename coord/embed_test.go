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
