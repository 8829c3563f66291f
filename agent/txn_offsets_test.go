package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// groupOffset is a group's committed offset of one partition as OffsetFetch v7 answers it, with
// RequireStable or not: the offset and the partition's error code.
func groupOffset(t *testing.T, cl *kgo.Client, group, topic string, partition int32, stable bool) (int64, int16) {
	t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Version = 7
	req.Group, req.RequireStable = group, stable
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{partition}
	req.Topics = append(req.Topics, rt)
	r, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if r.ErrorCode != 0 || len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		t.Fatalf("OffsetFetch: code %d, %d topics", r.ErrorCode, len(r.Topics))
	}
	p := r.Topics[0].Partitions[0]
	return p.Offset, p.ErrorCode
}

// txnCommitOffset has cl's open transaction commit offset for group on topic's partition 0
// (AddOffsetsToTxn, then TxnOffsetCommit at the group's coordinator).
func txnCommitOffset(t *testing.T, cl *kgo.Client, id, group, topic string, offset int64) {
	t.Helper()
	ctx := testCtx(t)
	pid, epoch, err := cl.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = id, pid, epoch, group
	ar, err := add.RequestWith(ctx, cl)
	if err != nil || ar.ErrorCode != 0 {
		t.Fatalf("AddOffsetsToTxn: %v, code %v", err, kerr.ErrorForCode(ar.ErrorCode))
	}
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch = id, group, pid, epoch
	req.Generation = -1
	rt := kmsg.NewTxnOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewTxnOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	r, err := req.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 || r.Topics[0].Partitions[0].ErrorCode != 0 {
		t.Fatalf("TxnOffsetCommit answered %+v", r.Topics)
	}
}

// Offsets committed in a transaction (TxnOffsetCommit) are invisible until the transaction commits:
// OffsetFetch answers the earlier offset, and with RequireStable UNSTABLE_OFFSET_COMMIT; once the
// transaction commits they are the group's offsets; an aborted transaction's offsets are dropped. The
// group's coordinator is another agent than the transaction's, so the commit's resolution of the
// offsets crosses the marker API; the transaction completes.
func TestTxnOffsetCommit(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	flag := func(c *Config) { c.Transactions = true }
	a1 := tc.agent("a1", flag)
	a2 := tc.agent("a2", flag)
	admin := kgoClient(t, nil, a1, a2)
	createTopic(t, admin, "oc", 1, nil)
	id := "tx-oc"
	waitTxnCoordinator(t, a1, id)
	// A group whose coordinator is a2 (the offsets topic's shards are spread over both agents).
	var grp string
	waitFor(t, "a group coordinated by the other agent", func() bool {
		for i := range 64 {
			name := fmt.Sprintf("g-%d", i)
			var sc kmsg.FindCoordinatorResponseCoordinator
			if a2.findCoordinator(client{}, coordinatorTypeGroup, name, &sc) == nil && sc.NodeID == a2.nodeID(a2.cfg.ID) {
				grp = name
				return true
			}
		}
		return false
	})
	ctx := testCtx(t)
	txp := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic("oc")}, a1, a2)
	state := func() string {
		s, _, err := tc.client().LoadTxn(ctx, DefaultGroup, id)
		if err != nil {
			t.Fatal(err)
		}
		return s.Meta.State
	}
	run := func(offset int64, end kgo.TransactionEndTry, want string) {
		t.Helper()
		if err := txp.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := txp.ProduceSync(ctx, kgo.StringRecord("v")).FirstErr(); err != nil {
			t.Fatal(err)
		}
		txnCommitOffset(t, txp, id, grp, "oc", offset)
		if got, code := groupOffset(t, admin, grp, "oc", 0, false); code != 0 || got == offset {
			t.Fatalf("before the end: offset %d (code %d) visible", got, code)
		}
		if _, code := groupOffset(t, admin, grp, "oc", 0, true); code != kerr.UnstableOffsetCommit.Code {
			t.Fatalf("RequireStable with a transaction's offset pending: code %v, want UNSTABLE_OFFSET_COMMIT", kerr.ErrorForCode(code))
		}
		if err := txp.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the transaction complete", func() bool { return state() == want })
	}

	run(42, kgo.TryCommit, coord.TxnCompleteCommit)
	if got, code := groupOffset(t, admin, grp, "oc", 0, true); code != 0 || got != 42 {
		t.Fatalf("after the commit: offset %d, code %v; want 42", got, kerr.ErrorForCode(code))
	}
	run(99, kgo.TryAbort, coord.TxnCompleteAbort)
	if got, code := groupOffset(t, admin, grp, "oc", 0, true); code != 0 || got != 42 {
		t.Fatalf("after the abort: offset %d, code %v; want 42", got, kerr.ErrorForCode(code))
	}
	// The group's etcd state holds no pending offsets once the transactions ended.
	snap, err := tc.client().LoadGroup(ctx, DefaultGroup, grp)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 0 {
		t.Fatalf("pending offsets left in etcd: %+v", snap.Pending)
	}
}

// Without the flag TxnOffsetCommit is neither advertised nor served.
func TestTxnOffsetCommitOffByDefault(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	if advertised(t, cl, kmsg.TxnOffsetCommit)[kmsg.TxnOffsetCommit] {
		t.Fatal("TxnOffsetCommit advertised without Config.Transactions")
	}
}

// franz-go's GroupTransactSession (consume, transform, produce exactly once) over two agents: the
// input's records reach the output once each, read_committed, and the group's offsets on the input
// move with the transactions.
func TestGroupTransactSession(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	flag := func(c *Config) { c.Transactions = true }
	a1 := tc.agent("a1", flag)
	a2 := tc.agent("a2", flag)
	admin := kgoClient(t, nil, a1, a2)
	createTopic(t, admin, "etl-in", 2, nil)
	createTopic(t, admin, "etl-out", 2, nil)
	ctx := testCtx(t)
	const n = 40
	var in []*kgo.Record
	for i := range n {
		in = append(in, &kgo.Record{Topic: "etl-in", Partition: int32(i % 2), Value: fmt.Appendf(nil, "r%d", i)})
	}
	if err := kgoClient(t, []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, a1, a2).ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(a1.KafkaAddr(), a2.KafkaAddr()), kgo.MetadataMinAge(50*time.Millisecond),
		kgo.TransactionalID("etl"), kgo.ConsumerGroup("etl-group"), kgo.ConsumeTopics("etl-in"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.RequireStableFetchOffsets(), kgo.DefaultProduceTopic("etl-out"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sess.Close)
	for done := 0; done < n; {
		fs := sess.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("transformed %d of %d records before timing out", done, n)
		}
		if errs := fs.Errors(); len(errs) > 0 {
			t.Fatalf("fetch errors: %v", errs)
		}
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Value: append([]byte("out-"), r.Value...)}, func(_ *kgo.Record, err error) {
				if err != nil {
					t.Errorf("transactional produce: %v", err)
				}
			})
		})
		committed, err := sess.End(ctx, kgo.TryCommit)
		if err != nil {
			t.Fatal(err)
		}
		if committed {
			done += len(fs.Records())
		}
	}
	seen := map[string]int{}
	for _, r := range consumeAll(t, []*Agent{a1, a2}, "etl-out", n, kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		seen[string(r.Value)]++
	}
	for i := range n {
		if v := fmt.Sprintf("out-r%d", i); seen[v] != 1 {
			t.Fatalf("%s read %d times", v, seen[v])
		}
	}
	var total int64
	for p := range int32(2) {
		waitFor(t, "the group's offsets stable", func() bool {
			_, code := groupOffset(t, admin, "etl-group", "etl-in", p, true)
			return code == 0
		})
		o, _ := groupOffset(t, admin, "etl-group", "etl-in", p, true)
		total += o
	}
	if total != n {
		t.Fatalf("the group's offsets on the input add up to %d, want %d", total, n)
	}
}
