package coord

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A commit Txn carries no reads: a failed one's reads are a request of their own, made after the
// answer, at the failed Txn's revision. What happens between the answer and that read must not
// change the diagnosis: the read sees what the compares saw.
func TestCommitFailureReadAtTheTxnRevision(t *testing.T) {
	t.Parallel()

	// An earlier attempt applied and its answer was lost; the next attempt fails on the record
	// key. Should the record be gone by the time of the read (GC deletes records whose entries are
	// dead), a read at the latest revision would find the leader key unchanged and commit the
	// partition again, in a second record: the read at the Txn's revision finds the record and
	// counts the commit as committed, once.
	t.Run("record deleted after the failure", func(t *testing.T) {
		t.Parallel()
		te := newTestEtcd(t)
		ctx := testCtx(t)
		c := te.client(t)
		tp := newTopic(t, c, "gone", 1).TP(0)
		s := newSession(t, c, "a", "127.0.0.1:1")
		epoch := acquire(t, s, tp)
		attempts := loseFirstAnswers(c)
		c.readHook = func(ctx context.Context, _ int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
			if _, err := c.Etcd().Delete(ctx, c.keys.commits(), clientv3.WithPrefix()); err != nil {
				return nil, err
			}
			return do(ctx)
		}
		if err := s.Commit(ctx, []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 3, 10)}})[0]; err != nil {
			t.Fatalf("commit whose first answer was lost: %v, want committed", err)
		}
		if n := attempts.Load(); n != 2 {
			t.Fatalf("%d commit Txns, want 2: the first, and the one that found it applied", n)
		}
		if n := recordCount(t, c); n != 0 {
			t.Fatalf("%d commit records after the deletion, want 0: the commit was written again", n)
		}
	})

	// A Txn fails on one partition that moved; the other partition in it moves after the answer,
	// before the read. At the Txn's revision the other partition's compare held: it is sent again
	// in a Txn of its own (which then fails, fenced), not called fenced on a later state.
	t.Run("leader moved after the failure", func(t *testing.T) {
		t.Parallel()
		te := newTestEtcd(t)
		ctx := testCtx(t)
		c := te.client(t)
		top := newTopic(t, c, "moved", 2)
		a := newSession(t, c, "a", "127.0.0.1:1")
		b := newSession(t, te.client(t), "b", "127.0.0.1:2")
		e0, e1 := acquire(t, a, top.TP(0)), acquire(t, a, top.TP(1))
		move := func(p int32, epoch int64) {
			if err := a.Resign(ctx, top.TP(p), epoch); err != nil {
				t.Error(err)
			}
			if _, err := b.Acquire(ctx, top.TP(p), EpochHint{}); err != nil {
				t.Error(err)
			}
		}
		move(0, e0)
		var sent atomic.Int32
		c.txnHook = func(ctx context.Context, _ int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
			sent.Add(1)
			return do(ctx)
		}
		var reads atomic.Int32
		c.readHook = func(ctx context.Context, _ int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
			if reads.Add(1) == 1 {
				move(1, e1)
			}
			return do(ctx)
		}
		errs := a.Commit(ctx, []Commit{{TP: top.TP(0), Epoch: e0, Entry: entry(0, 1, 1)}, {TP: top.TP(1), Epoch: e1, Entry: entry(0, 1, 1)}})
		for p, err := range errs {
			if !errors.Is(err, ErrFenced) {
				t.Fatalf("partition %d: %v, want ErrFenced", p, err)
			}
		}
		if !strings.Contains(errs[1].Error(), "holder \"b\"") {
			t.Fatalf("partition 1: %v, want the holder named", errs[1])
		}
		if n := sent.Load(); n != 2 {
			t.Fatalf("%d commit Txns, want 2: partition 1's compare held when the first failed, so it is retried alone", n)
		}
		if got := counterValue(t, c.metrics.fenced); got != 2 {
			t.Fatalf("fenced commits counted %v, want 2", got)
		}
	})
}

// A failed Txn's read that cannot be made leaves the commit's outcome unknown: never ErrFenced (the
// caller would take the commit for not applied), never nil. A read etcd cannot answer at once is sent
// again. A revision etcd compacted away is a read that cannot be made.
func TestCommitFailureReadFails(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T, te *testEtcd) (*Client, *Session, TP, int64, *Session) {
		c := te.client(t)
		tp := newTopic(t, c, "t", 1).TP(0)
		a := newSession(t, c, "a", "127.0.0.1:1")
		epoch := acquire(t, a, tp)
		if err := a.Resign(testCtx(t), tp, epoch); err != nil {
			t.Fatal(err)
		}
		b := newSession(t, te.client(t), "b", "127.0.0.1:2")
		acquire(t, b, tp)
		return c, a, tp, epoch, b
	}

	t.Run("unavailable, then answered", func(t *testing.T) {
		t.Parallel()
		c, a, tp, epoch, _ := setup(t, newTestEtcd(t))
		var reads atomic.Int32
		c.readHook = func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
			reads.Add(1)
			if attempt == 1 {
				return nil, rpctypes.ErrGRPCNoLeader
			}
			return do(ctx)
		}
		if err := a.Commit(testCtx(t), []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 1, 1)}})[0]; !errors.Is(err, ErrFenced) {
			t.Fatalf("commit: %v, want ErrFenced", err)
		}
		if n := reads.Load(); n != 2 {
			t.Fatalf("%d reads, want 2", n)
		}
	})

	t.Run("revision compacted", func(t *testing.T) {
		t.Parallel()
		te := etcdWithMaxTxnOps(t, DefaultMaxTxnOps) // compacts: an etcd of its own
		c, a, tp, epoch, _ := setup(t, te)
		c.readHook = func(ctx context.Context, _ int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
			// A write moves the revision on, and a compaction up to it drops the failed Txn's.
			put, err := c.Etcd().Put(ctx, te.Prefix+"x", "x")
			if err != nil {
				return nil, err
			}
			if _, err := c.Etcd().Compact(ctx, put.Header.Revision); err != nil {
				return nil, err
			}
			return do(ctx)
		}
		err := a.Commit(testCtx(t), []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 1, 1)}})[0]
		if err == nil || errors.Is(err, ErrFenced) || !errors.Is(err, rpctypes.ErrCompacted) || !strings.Contains(err.Error(), "outcome unknown") {
			t.Fatalf("commit: %v, want an unknown outcome, etcd's compaction named", err)
		}
		if next, _ := loadPartition(t, c, tp); next != 0 {
			t.Fatalf("next offset %d, want 0", next)
		}
	})
}

// sortFenced tells each kind of failure apart from what the failed Txn's compares saw: its own
// record present (an earlier attempt applied; committed) or present with other contents (an error,
// not fenced); a prior record present (committed); a leader key changed or gone (ErrFenced, naming
// the epochs and the holder); a leader key unchanged in a Txn that failed on another partition
// (retried).
func TestSortFencedDiagnosis(t *testing.T) {
	t.Parallel()
	s := &Session{c: &Client{keys: keys{prefix: DefaultPrefix}, log: hclog.NewNullLogger(), metrics: newMetrics(nil)}}
	var topic TopicID
	tps := []TP{{Topic: topic, Partition: 0}, {Topic: topic, Partition: 1}}
	build := func(prior string) ([]*unit, recordTxn) {
		units := s.buildUnits([]Commit{
			{TP: tps[0], Epoch: 10, Entry: entry(0, 1, 1)},
			{TP: tps[1], Epoch: 20, Entry: entry(0, 1, 1)},
		}, make([]error, 2))
		if prior != "" {
			units[1].prior = []string{prior}
		}
		return units, s.buildTxn(units)
	}
	kv := func(create int64, value string) *pb.ResponseOp {
		var kvs []*mvccpb.KeyValue
		if create > 0 {
			kvs = append(kvs, &mvccpb.KeyValue{CreateRevision: create, Value: []byte(value)})
		}
		return &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: &pb.RangeResponse{Kvs: kvs}}}
	}
	leader := func(agent string) string { return `{"agent":"` + agent + `","epoch":3}` }
	type outcome int
	const (
		committed outcome = iota
		fenced
		retried
		failed // an error, not ErrFenced
	)
	for _, tc := range []struct {
		name  string
		prior bool
		// reads builds what the read answers: each unit's leader key, the record, the prior record.
		reads func(t recordTxn) []*pb.ResponseOp
		want  [2]outcome
		msg   string // in partition 0's error
	}{
		{"own record applied", false, func(t recordTxn) []*pb.ResponseOp {
			return []*pb.ResponseOp{kv(99, leader("b")), kv(98, leader("b")), kv(50, t.value)}
		}, [2]outcome{committed, committed}, ""},
		{"own record with other contents", false, func(recordTxn) []*pb.ResponseOp {
			return []*pb.ResponseOp{kv(10, leader("a")), kv(20, leader("a")), kv(50, "other")}
		}, [2]outcome{failed, failed}, "exists with other contents"},
		{"prior record applied", true, func(recordTxn) []*pb.ResponseOp {
			return []*pb.ResponseOp{kv(99, leader("b")), kv(20, leader("a")), kv(0, ""), kv(40, "prior")}
		}, [2]outcome{fenced, committed}, `epoch 10, leader key now epoch 99 (holder "b")`},
		{"leader moved, other retried", false, func(recordTxn) []*pb.ResponseOp {
			return []*pb.ResponseOp{kv(99, leader("b")), kv(20, leader("a")), kv(0, "")}
		}, [2]outcome{fenced, retried}, `epoch 10, leader key now epoch 99 (holder "b")`},
		{"leader key gone", true, func(recordTxn) []*pb.ResponseOp {
			return []*pb.ResponseOp{kv(0, ""), kv(0, ""), kv(0, ""), kv(0, "")}
		}, [2]outcome{fenced, fenced}, `epoch 10, leader key now epoch 0 (holder "")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prior := ""
			if tc.prior {
				prior = s.c.keys.commit("PRIOR")
			}
			units, txn := build(prior)
			res := txnResult{errs: map[int]error{}}
			s.sortFenced(units, txn, tc.reads(txn), &res)
			for i, want := range tc.want {
				err, set := res.errs[i]
				var got outcome
				switch {
				case slices.Contains(res.retry, i):
					got = retried
				case set && err == nil:
					got = committed
				case errors.Is(err, ErrFenced):
					got = fenced
				case err != nil:
					got = failed
				default:
					t.Fatalf("commit %d: no outcome", i)
				}
				if got != want {
					t.Fatalf("commit %d: outcome %d (%v), want %d", i, got, err, want)
				}
			}
			if tc.msg != "" && !strings.Contains(res.errs[0].Error(), tc.msg) {
				t.Fatalf("commit 0: %v, want it to say %q", res.errs[0], tc.msg)
			}
		})
	}
}
