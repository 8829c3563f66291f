package coord

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestRegisterRevokesStaleSameAddress(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	old := newSession(t, te.client(t), "a1", "127.0.0.1:9092")
	tp := TP{Topic: NewTopicID()}
	if _, err := rev(old.Acquire(ctx, tp, EpochHint{})); err != nil {
		t.Fatal(err)
	}

	// The same agent restarts (same id, same address) while its old lease is still alive.
	c := te.client(t)
	fresh := newSession(t, c, "a1", "127.0.0.1:9092")

	ttl, err := c.Etcd().TimeToLive(ctx, old.LeaseID())
	if err != nil {
		t.Fatal(err)
	}
	if ttl.TTL > 0 {
		t.Fatalf("predecessor's lease still alive (TTL %d)", ttl.TTL)
	}
	agents, err := c.Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 || agents[0].ID != "a1" {
		t.Fatalf("Agents = %+v", agents)
	}
	resp, err := c.Etcd().Get(ctx, c.keys.agent("a1"))
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Kvs[0].Lease; got != int64(fresh.LeaseID()) {
		t.Fatalf("agents/a1 on lease %x, want the new session's %x", got, fresh.LeaseID())
	}
	// The predecessor's leadership went with its lease: the partition is free at once.
	if _, err := rev(fresh.Acquire(ctx, tp, EpochHint{})); err != nil {
		t.Fatalf("acquire after predecessor revoked: %v", err)
	}
	if _, err := rev(old.Acquire(ctx, TP{Topic: NewTopicID()}, EpochHint{})); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("acquire on revoked session: %v, want ErrSessionClosed", err)
	}
}

func TestRegisterRefusesLiveAgentElsewhere(t *testing.T) {
	te := newTestEtcd(t)
	live := newSession(t, te.client(t), "a1", "10.0.0.1:9092")
	c := te.client(t)
	_, err := c.Register(testCtx(t), AgentInfo{ID: "a1", Addr: "10.0.0.2:9092"}, 10*time.Second)
	if !errors.Is(err, ErrAgentIDInUse) {
		t.Fatalf("Register = %v, want ErrAgentIDInUse", err)
	}
	if !strings.Contains(err.Error(), `"a1"`) || !strings.Contains(err.Error(), "10.0.0.1:9092") {
		t.Fatalf("error %q does not name the id and the live address", err)
	}
	ttl, err := c.Etcd().TimeToLive(testCtx(t), live.LeaseID())
	if err != nil || ttl.TTL <= 0 {
		t.Fatalf("live agent's lease hurt: TTL %v, %v", ttl.TTL, err)
	}
	// Once the live agent is gone, the id is free for the other address.
	if err := live.Close(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	newSession(t, c, "a1", "10.0.0.2:9092")
}

func TestAcquireResignEpochs(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	a := newSession(t, te.client(t), "a", "127.0.0.1:1")
	b := newSession(t, te.client(t), "b", "127.0.0.1:2")
	tp := TP{Topic: NewTopicID(), Partition: 3}

	e1, err := rev(a.Acquire(ctx, tp, EpochHint{}))
	if err != nil || e1 <= 0 {
		t.Fatalf("Acquire = %d, %v", e1, err)
	}
	if again, err := rev(a.Acquire(ctx, tp, EpochHint{})); err != nil || again != e1 {
		t.Fatalf("re-Acquire by the holder = %d, %v; want %d", again, err, e1)
	}
	_, err = rev(b.Acquire(ctx, tp, EpochHint{}))
	if !errors.Is(err, ErrLeaderHeld) || !strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("Acquire while held = %v, want ErrLeaderHeld naming a", err)
	}

	if err := a.Resign(ctx, tp, e1+1000); err != nil { // not our epoch: nothing happens
		t.Fatal(err)
	}
	if _, err := rev(b.Acquire(ctx, tp, EpochHint{})); !errors.Is(err, ErrLeaderHeld) {
		t.Fatalf("resign with a wrong epoch released the key: %v", err)
	}
	if err := a.Resign(ctx, tp, e1); err != nil {
		t.Fatal(err)
	}
	e2, err := rev(b.Acquire(ctx, tp, EpochHint{}))
	if err != nil || e2 <= e1 {
		t.Fatalf("Acquire after resign = %d, %v; want > %d", e2, err, e1)
	}

	// Closing b's session releases its leadership; a takes over with a larger epoch.
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	waitChan(t, b.Done(), "closed session's Done")
	e3, err := rev(a.Acquire(ctx, tp, EpochHint{}))
	if err != nil || e3 <= e2 {
		t.Fatalf("Acquire after holder closed = %d, %v; want > %d", e3, err, e2)
	}
	if _, err := rev(b.Acquire(ctx, tp, EpochHint{})); !errors.Is(err, ErrSessionClosed) {
		t.Fatalf("Acquire on closed session: %v", err)
	}
}

func TestSessionDoneWhenLeaseRevoked(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	s, err := c.Register(testCtx(t), AgentInfo{ID: "a", Addr: "x:1"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	notClosed(t, s.Done(), "Done of a live session")
	if _, err := c.Etcd().Revoke(testCtx(t), s.LeaseID()); err != nil {
		t.Fatal(err)
	}
	// The keep-alive, sent every TTL/3, learns the lease is gone.
	waitChan(t, s.Done(), "Done after the lease was revoked")
}

func TestEvictRevokesRegistrationAndLeadership(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	tp := newTopic(t, c, "t", 1).TP(0)
	s := newSession(t, c, "gone", "127.0.0.1:1")
	if _, err := rev(s.Acquire(ctx, tp, EpochHint{})); err != nil {
		t.Fatal(err)
	}
	if err := c.Evict(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	// Revoking deleted the keys at once; the session itself notices at its next keep-alive.
	agents, err := c.Agents(ctx)
	if err != nil || len(agents) != 0 {
		t.Fatalf("agents after evict: %v, %v", agents, err)
	}
	// A new agent at another address may now take the id and the partition.
	s2 := newSession(t, c, "gone", "127.0.0.1:2")
	if _, err := rev(s2.Acquire(ctx, tp, EpochHint{})); err != nil {
		t.Fatalf("acquire after evict: %v", err)
	}
	if err := c.Evict(ctx, "never-registered"); err != nil {
		t.Fatalf("evicting an unknown agent: %v", err)
	}
}
