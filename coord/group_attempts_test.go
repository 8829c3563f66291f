package coord

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// As TestCommitSurvivesEtcdLeaderKill, for an offset commit of a consumer group: the group write
// forwarded to the dead leader is sent again once a new one is elected.
func TestGroupWriteSurvivesEtcdLeaderKill(t *testing.T) {
	members, lead, c := followerCluster(t)
	ctx := testCtx(t)
	shards := newTopic(t, c, "__consumer_offsets", 1)
	data := newTopic(t, c, "data", 1)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := rev(s.Acquire(ctx, shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	f := GroupFence{Shard: shards.TP(0), Epoch: epoch}
	v, err := c.WriteGroup(ctx, f, "default", "g", GroupWrite{Meta: &GroupMeta{State: "Empty"}, Offsets: []GroupOffset{groupOffset(data, 0, 10)}})
	if err != nil {
		t.Fatal(err)
	}

	members[lead].Server.HardStop() // as kill -9: no leadership transfer
	start := time.Now()
	v, err = c.WriteGroup(ctx, f, "default", "g", GroupWrite{Offsets: []GroupOffset{groupOffset(data, 0, 20)}, Version: v})
	took := time.Since(start)
	t.Logf("group write right after the etcd leader's death: %v after %v", err, took)
	if err != nil {
		t.Fatalf("group write across the etcd leader's death: %v", err)
	}
	bounded(t, "group write", took)
	g, err := c.LoadGroup(ctx, "default", "g")
	if err != nil || len(g.Offsets) != 1 || g.Offsets[0].Offset != 20 || g.Version != v {
		t.Fatalf("group after the write: %+v (version %d returned), %v", g, v, err)
	}
}

// groupShard sets up a coordinator shard led by a fresh session of c, and a data topic.
func groupShard(t *testing.T, c *Client) (GroupFence, Topic) {
	t.Helper()
	shards := newTopic(t, c, "__consumer_offsets", 1)
	data := newTopic(t, c, "data", 8)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := rev(s.Acquire(testCtx(t), shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	return GroupFence{Shard: shards.TP(0), Epoch: epoch}, data
}

// Every Txn of a group write applied but its answer was lost: the next attempt of each finds its
// own token in the version key and counts as applied, not as a group changed by someone else.
// Likewise for a deletion, which the next attempt finds done.
func TestGroupWriteAttemptAppliedAnswerLost(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 3 }) // 2 group operations per Txn
	f, data := groupShard(t, c)
	attempts := loseFirstAnswers(c)
	w := GroupWrite{Meta: &GroupMeta{State: "Empty", Generation: 3}}
	for p := range int32(4) {
		w.Offsets = append(w.Offsets, groupOffset(data, p, 10+int64(p)))
	}
	v, err := c.WriteGroup(ctx, f, "default", "g", w) // 5 operations: 3 Txns
	if err != nil {
		t.Fatalf("group write whose answers were lost: %v, want written", err)
	}
	if n := attempts.Load(); n != 6 {
		t.Fatalf("%d attempts, want 6 (2 for each of 3 Txns)", n)
	}
	if got := counterValue(t, c.metrics.retries); got != 3 {
		t.Fatalf("retries counted %v, want 3", got)
	}
	g, err := admin.LoadGroup(ctx, "default", "g")
	if err != nil || g.Meta == nil || g.Meta.Generation != 3 || len(g.Offsets) != 4 || g.Version != v {
		t.Fatalf("group after the write: %+v (version %d returned), %v", g, v, err)
	}

	v, err = c.WriteGroup(ctx, f, "default", "g", GroupWrite{Delete: true, Version: v})
	if err != nil || v != 0 {
		t.Fatalf("deletion whose answer was lost: version %d, %v; want deleted", v, err)
	}
	if g, err := admin.LoadGroup(ctx, "default", "g"); err != nil || g.Meta != nil || len(g.Offsets) != 0 || g.Version != 0 {
		t.Fatalf("group after the deletion: %+v, %v", g, err)
	}
}

// Between two attempts of a write, a newer state of the group is written (here by the same
// coordinator after a reload, as after an unknown outcome): the resend changes nothing and says
// the group changed, and so does an attempt that etcd applies only after the write was given up.
func TestGroupWriteAttemptKeepsNewerState(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	c := te.client(t, func(cfg *Config) {
		cfg.CommitAttemptTimeout = 100 * time.Millisecond
		cfg.CommitTimeout = 300 * time.Millisecond
	})
	f, data := groupShard(t, c)
	v0, err := admin.WriteGroup(ctx, f, "default", "g", GroupWrite{Meta: &GroupMeta{State: "Empty"}, Offsets: []GroupOffset{groupOffset(data, 0, 5)}})
	if err != nil {
		t.Fatal(err)
	}
	offset := func() int64 {
		t.Helper()
		g, err := admin.LoadGroup(ctx, "default", "g")
		if err != nil || len(g.Offsets) != 1 {
			t.Fatalf("group: %+v, %v", g, err)
		}
		return g.Offsets[0].Offset
	}

	// The first attempt is lost on the way; a newer state is written before the resend.
	var newer int64
	c.txnHook = func(actx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		if attempt == 1 {
			var err error
			if newer, err = admin.WriteGroup(ctx, f, "default", "g", GroupWrite{Offsets: []GroupOffset{groupOffset(data, 0, 20)}, Version: v0}); err != nil {
				t.Error(err)
			}
			return nil, rpctypes.ErrTimeoutDueToLeaderFail
		}
		return do(actx)
	}
	_, err = c.WriteGroup(ctx, f, "default", "g", GroupWrite{Offsets: []GroupOffset{groupOffset(data, 0, 10)}, Version: v0})
	if !errors.Is(err, ErrGroupChanged) {
		t.Fatalf("resend over a newer state: %v, want ErrGroupChanged", err)
	}
	if got := offset(); got != 20 {
		t.Fatalf("offset %d after the resend, want the newer 20", got)
	}

	// Every attempt of a write is held (as by a dead etcd leader): its outcome is unknown. The
	// coordinator reloads the group and writes a newer state; then etcd applies a held attempt.
	var held []func(context.Context) (*clientv3.TxnResponse, error)
	c.txnHook = func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		held = append(held, do)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	_, err = c.WriteGroup(ctx, f, "default", "g", GroupWrite{Offsets: []GroupOffset{groupOffset(data, 0, 30)}, Version: newer})
	if err == nil || errors.Is(err, ErrFenced) || errors.Is(err, ErrGroupChanged) || len(held) < 2 {
		t.Fatalf("write whose every attempt was held: %v after %d attempts, want an unknown outcome after several", err, len(held))
	}
	c.txnHook = nil
	g, err := c.LoadGroup(ctx, "default", "g")
	if err != nil || g.Version != newer {
		t.Fatalf("reload: %+v, %v", g, err)
	}
	if _, err := c.WriteGroup(ctx, f, "default", "g", GroupWrite{Offsets: []GroupOffset{groupOffset(data, 0, 40)}, Version: g.Version}); err != nil {
		t.Fatal(err)
	}
	for i, do := range held {
		resp, err := do(ctx)
		if err != nil || resp.Succeeded {
			t.Fatalf("held attempt %d applied late: succeeded %v, %v; want its compare to fail", i+1, resp != nil && resp.Succeeded, err)
		}
	}
	if got := offset(); got != 40 {
		t.Fatalf("offset %d after the late attempts, want the newer 40", got)
	}
}
