package coord

import (
	"context"
	"fmt"
	"math"
	"net"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/etcdutl/v3/snapshot"
	"go.uber.org/zap"
)

// freeAddr is a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// An etcd restored from a snapshot with its revision bumped past 2^31 (etcdutl snapshot restore
// --bump-revision, as an operator recovering a cluster does) keeps fencing on revisions, which are
// int64, while the leader epochs clients are told stay small and keep growing: they come from a
// counter, not from the revision, so clients (int32 epochs) still follow leaders.
func TestEpochsSurviveARevisionBumpPastInt32(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir, peer := t.TempDir(), freeAddr(t)
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: filepath.Join(dir, "before"), ClientAddr: "127.0.0.1:0", PeerAddr: peer, UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Connect(ctx, Config{Endpoints: e.Endpoints(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	top, err := c.CreateTopic(ctx, Topic{Name: "t", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := newSession(t, c, "a", "127.0.0.1:1")
	l1 := lead(t, s, top.TP(0))
	if err := s.Commit(ctx, []Commit{{TP: top.TP(0), Epoch: l1.Rev, Entry: withEpoch(entry(0, 5, 10), l1)}})[0]; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil { // the leader key goes with the session
		t.Fatal(err)
	}
	snap := filepath.Join(dir, "snap.db")
	if _, err := snapshot.NewV3(zap.NewNop()).Save(ctx, clientv3.Config{Endpoints: e.Endpoints(), Logger: zap.NewNop()}, snap); err != nil {
		t.Fatal(err)
	}
	c.Close()
	e.Close()

	restored := filepath.Join(dir, "after")
	if err := snapshot.NewV3(zap.NewNop()).Restore(snapshot.RestoreConfig{SnapshotPath: snap, Name: DefaultEmbedName,
		OutputDataDir: restored, PeerURLs: []string{"http://" + peer}, InitialCluster: DefaultEmbedName + "=http://" + peer,
		InitialClusterToken: "etcd-cluster", RevisionBump: 1 << 31, MarkCompacted: true}); err != nil {
		t.Fatal(err)
	}
	e, err = StartEmbedded(ctx, EmbedConfig{Dir: restored, ClientAddr: "127.0.0.1:0", PeerAddr: peer, UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err = Connect(ctx, Config{Endpoints: e.Endpoints(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	k := runCache(t, c, nil)
	s = newSession(t, c, "b", "127.0.0.1:2")
	l2, err := s.Acquire(ctx, top.TP(0), k.EpochHint(top.TP(0)))
	if err != nil {
		t.Fatal(err)
	}
	if l2.Rev <= math.MaxInt32 || l2.Epoch != l1.Epoch+1 {
		t.Fatalf("after the bump: leadership %+v; want a revision past 2^31 and epoch %d", l2, l1.Epoch+1)
	}
	if err := s.Commit(ctx, []Commit{{TP: top.TP(0), Epoch: l2.Rev, Entry: withEpoch(entry(5, 5, 10), l2)}})[0]; err != nil {
		t.Fatalf("commit fenced by a revision past 2^31: %v", err)
	}
	syncCache(t, k)
	ld, ok := k.Leader(top.TP(0))
	if !ok || ld.Epoch != l2.Epoch || ld.Rev != l2.Rev {
		t.Fatalf("view's leader %+v, want %+v", ld, l2)
	}
	if le, end, _ := k.EpochEnd(top.TP(0), int64(l1.Epoch)); le != int64(l1.Epoch) || end != 5 {
		t.Fatalf("epoch %d ends at %d (as epoch %d); want 5", l1.Epoch, end, le)
	}
	if got := fmt.Sprint(k.HighWatermark(top.TP(0))); got != "10" {
		t.Fatalf("high watermark %s, want 10", got)
	}
}
