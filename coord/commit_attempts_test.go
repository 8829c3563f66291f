package coord

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// startCluster starts n etcd members in this process, with etcd's default heartbeat (100 ms) and
// election timeout (1 s), and waits until they serve requests.
func startCluster(t *testing.T, n int) []*embed.Etcd {
	t.Helper()
	peers := make([]string, n)
	for i := range peers {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		peers[i] = l.Addr().String()
		l.Close()
	}
	var initial []string
	for i, p := range peers {
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, p))
	}
	members := make([]*embed.Etcd, n)
	for i := range members {
		cfg := embed.NewConfig()
		cfg.Name, cfg.Dir = fmt.Sprintf("m%d", i), t.TempDir()
		curl := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
		purl := url.URL{Scheme: "http", Host: peers[i]}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{curl}, []url.URL{curl}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{purl}, []url.URL{purl}
		cfg.InitialCluster, cfg.InitialClusterToken = strings.Join(initial, ","), "commit-attempts"
		cfg.ClusterState = embed.ClusterStateFlagNew
		cfg.TickMs, cfg.ElectionMs = 100, 1000
		cfg.UnsafeNoFsync = true
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Close)
		members[i] = e
	}
	for _, e := range members {
		select {
		case <-e.Server.ReadyNotify():
		case err := <-e.Err():
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatal("etcd cluster not ready")
		}
	}
	return members
}

// etcdLeader waits until the members agree on a leader and returns its index.
func etcdLeader(t *testing.T, members []*embed.Etcd) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		lead := members[0].Server.Leader()
		agreed := lead != 0
		at := -1
		for i, e := range members {
			agreed = agreed && e.Server.Leader() == lead
			if e.Server.MemberID() == lead {
				at = i
			}
		}
		if agreed && at >= 0 {
			return at
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("no etcd leader")
	return -1
}

// followerCluster starts three etcd members and connects a client to the two that do not lead: its
// Txns are forwarded to the leader, as from an agent whose connection is to a follower. lead is
// the leader's index in members.
func followerCluster(t *testing.T) (members []*embed.Etcd, lead int, c *Client) {
	t.Helper()
	members = startCluster(t, 3)
	lead = etcdLeader(t, members)
	var followers []string
	for i, e := range members {
		if i != lead {
			followers = append(followers, e.Clients[0].Addr().String())
		}
	}
	c, err := Connect(testCtx(t), Config{Endpoints: followers, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return members, lead, c
}

// ledPartition creates a one-partition topic, leads its partition on a new session and commits
// offsets 0 to last there.
func ledPartition(t *testing.T, c *Client, last int64) (TP, *Session, int64) {
	t.Helper()
	ctx := testCtx(t)
	tp := newTopic(t, c, "killed", 1).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := rev(s.Acquire(ctx, tp, EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, last, 10)}})[0]; err != nil {
		t.Fatal(err)
	}
	return tp, s, epoch
}

// Found by the chaos suite (etcd-leader-kill: produce stalled about 7.7 s on every partition, each
// time): a commit Txn that an etcd follower forwarded to a leader that was then killed is held by
// the follower until etcd's own request timeout, 5 s + 2 × the election timeout (7 s with the
// default 1 s), and only then fails, "request timed out, possibly due to previous leader failure";
// and the agent's commits are serial. A new leader is elected within about 2 election timeouts: the
// commit must be sent again then, and succeed, not wait for etcd to give up on it.
func TestCommitSurvivesEtcdLeaderKill(t *testing.T) {
	members, lead, c := followerCluster(t)
	ctx := testCtx(t)
	tp, s, epoch := ledPartition(t, c, 1)

	members[lead].Server.HardStop() // as kill -9: no leadership transfer
	start := time.Now()
	err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(1, 1, 10)}})[0]
	took := time.Since(start)
	t.Logf("commit right after the etcd leader's death: %v after %v", err, took)
	if err != nil {
		t.Fatalf("commit across the etcd leader's death: %v", err)
	}
	// etcd's own timeout is 7 s; a new leader is there after at most about 2 s.
	if took > 4*time.Second {
		t.Fatalf("commit across the etcd leader's death took %v, want it bounded near the election time", took)
	}
	if got := indexBases(t, c, tp); len(got) != 2 || got[1].BaseOffset != 1 {
		t.Fatalf("index after the commit: %+v", got)
	}
}

// bounded fails the test when an operation across the etcd leader's death took longer than a new
// leader needs: etcd's own request timeout is 7 s, a new leader is there after at most about 2 s.
func bounded(t *testing.T, what string, took time.Duration) {
	t.Helper()
	if took > 4*time.Second {
		t.Fatalf("%s across the etcd leader's death took %v, want it bounded near the election time", what, took)
	}
}

// Taking a partition's leadership right after the etcd leader's death: the leader key's creation
// is sent again once a new etcd leader is elected.
func TestAcquireSurvivesEtcdLeaderKill(t *testing.T) {
	members, lead, c := followerCluster(t)
	ctx := testCtx(t)
	top := newTopic(t, c, "killed", 2)
	s := newSession(t, c, "a", "127.0.0.1:1")
	if _, err := rev(s.Acquire(ctx, top.TP(0), EpochHint{})); err != nil {
		t.Fatal(err)
	}

	members[lead].Server.HardStop()
	start := time.Now()
	epoch, err := rev(s.Acquire(ctx, top.TP(1), EpochHint{}))
	took := time.Since(start)
	t.Logf("acquire right after the etcd leader's death: epoch %d, %v after %v", epoch, err, took)
	if err != nil {
		t.Fatalf("acquire across the etcd leader's death: %v", err)
	}
	bounded(t, "acquire", took)
	// Acquiring again finds the key this session holds, at the same epoch.
	if again, err := rev(s.Acquire(ctx, top.TP(1), EpochHint{})); err != nil || again != epoch {
		t.Fatalf("acquire again: epoch %d, %v; want %d", again, err, epoch)
	}
}

// loseFirstAnswers makes the first attempt of each of c's Txns apply and lose its answer; it counts
// every attempt.
func loseFirstAnswers(c *Client) *atomic.Int32 {
	attempts := new(atomic.Int32)
	c.txnHook = func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		attempts.Add(1)
		if attempt == 1 {
			return lostAnswer(ctx, do)
		}
		return do(ctx)
	}
	return attempts
}

// lostAnswer lets a Txn apply and then reports the error of an answer that never came.
func lostAnswer(ctx context.Context, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
	if _, err := do(ctx); err != nil {
		return nil, err
	}
	return nil, rpctypes.ErrTimeoutDueToLeaderFail
}

// An attempt that applied but whose answer was lost is found applied by the next attempt: the
// commit is committed, once, not written twice nor left unknown.
func TestCommitAttemptAppliedAnswerLost(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	tp := newTopic(t, c, "lost", 2).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := rev(s.Acquire(ctx, tp, EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	attempts := loseFirstAnswers(c)
	b := ProducerBatch{ID: 7, Epoch: 0, FirstSeq: 0, LastSeq: 2, FirstOffset: 0, LastOffset: 2}
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 3, 10), Batches: []ProducerBatch{b}}})[0]; err != nil {
		t.Fatalf("commit whose first answer was lost: %v, want committed", err)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	if got := counterValue(t, c.metrics.retries); got != 1 {
		t.Fatalf("retries counted %v, want 1", got)
	}
	next, producers := loadPartition(t, c, tp)
	if next != 3 || len(producers) != 1 || producers[0].ID != 7 || len(producers[0].Batches) != 1 {
		t.Fatalf("partition state = %d, %+v; want 3 and producer 7 with one batch", next, producers)
	}
	if n := recordCount(t, c); n != 1 {
		t.Fatalf("%d commit records, want 1: the second attempt must not write its record again", n)
	}
}

// recordCount counts the commit records in etcd.
func recordCount(t *testing.T, c *Client) int64 {
	t.Helper()
	resp, err := c.Etcd().Get(testCtx(t), c.keys.commits(), clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// An attempt lost on the way (it did not apply) and a leadership that moved before the next one:
// fenced, as a commit that never applied. An attempt that applied before the leadership moved:
// committed, although the next attempt is fenced.
func TestCommitAttemptLostThenFenced(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(fmt.Sprintf("applied=%v", applied), func(t *testing.T) {
			te := newTestEtcd(t)
			ctx := testCtx(t)
			admin := te.client(t)
			c := te.client(t)
			tp := newTopic(t, admin, "moved", 1).TP(0)
			a := newSession(t, c, "a", "127.0.0.1:1")
			epoch, err := rev(a.Acquire(ctx, tp, EpochHint{}))
			if err != nil {
				t.Fatal(err)
			}
			b := newSession(t, te.client(t), "b", "127.0.0.1:2")
			c.txnHook = func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
				if attempt > 1 {
					return do(ctx)
				}
				var err error = rpctypes.ErrTimeout
				if applied {
					_, err = lostAnswer(ctx, do)
				}
				// The leadership moves before the commit is sent again.
				if _, rerr := admin.Etcd().Revoke(ctx, a.LeaseID()); rerr != nil {
					t.Error(rerr)
				}
				if _, aerr := rev(b.Acquire(ctx, tp, EpochHint{})); aerr != nil {
					t.Error(aerr)
				}
				return nil, err
			}
			err = a.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 1, 10)}})[0]
			next, _ := loadPartition(t, admin, tp)
			if applied {
				if err != nil || next != 1 {
					t.Fatalf("commit applied before the move: %v, next offset %d; want committed at 0", err, next)
				}
				return
			}
			if !errors.Is(err, ErrFenced) || next != 0 {
				t.Fatalf("commit lost before the move: %v, next offset %d; want ErrFenced, nothing written", err, next)
			}
		})
	}
}

// An attempt that hangs (a Txn stuck on a dead etcd leader) is abandoned at CommitAttemptTimeout
// and the commit sent again; one that keeps hanging ends at CommitTimeout with an error that is not
// "fenced": its outcome is unknown.
func TestCommitAttemptDeadline(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) {
		cfg.CommitAttemptTimeout = 200 * time.Millisecond
		cfg.CommitTimeout = time.Second
	})
	tp := newTopic(t, c, "stuck", 1).TP(0)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := rev(s.Acquire(ctx, tp, EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	hang := func(ctx context.Context) (*clientv3.TxnResponse, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	var stuck atomic.Int32
	stuck.Store(1)
	var attempts atomic.Int32
	c.txnHook = func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		attempts.Add(1)
		if int32(attempt) <= stuck.Load() {
			return hang(ctx)
		}
		return do(ctx)
	}
	start := time.Now()
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 1, 10)}})[0]; err != nil {
		t.Fatalf("commit whose first attempt hung: %v", err)
	}
	if took := time.Since(start); took < 200*time.Millisecond || took > 900*time.Millisecond {
		t.Fatalf("commit whose first attempt hung took %v, want about the 200ms attempt timeout", took)
	}

	stuck.Store(1000)
	attempts.Store(0)
	start = time.Now()
	err = s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(1, 1, 10)}})[0]
	took := time.Since(start)
	if err == nil || errors.Is(err, ErrFenced) {
		t.Fatalf("commit whose every attempt hung: %v, want an unknown outcome", err)
	}
	if took < time.Second || took > 2*time.Second {
		t.Fatalf("commit whose every attempt hung took %v, want the 1s commit timeout", took)
	}
	// 200ms, then 400ms, then what is left of the second: 3 attempts.
	if n := attempts.Load(); n != 3 {
		t.Fatalf("%d attempts, want 3 (each timeout doubles)", n)
	}

	// An error that says the Txn itself is wrong is not sent again.
	attempts.Store(0)
	c.txnHook = func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		attempts.Add(1)
		return nil, rpctypes.ErrTooManyOps
	}
	if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(2, 1, 10)}})[0]; !errors.Is(err, rpctypes.ErrTooManyOps) {
		t.Fatalf("commit refused by etcd: %v", err)
	}
	if n := attempts.Load(); n != 1 {
		t.Fatalf("%d attempts of a Txn etcd refused, want 1", n)
	}
}
