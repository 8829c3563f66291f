package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// rawTxnOffsetCommit sends a TxnOffsetCommit of offset on topic's partition 0 for producer pid/epoch
// of id, without AddOffsetsToTxn, and returns the partition's code.
func rawTxnOffsetCommit(t *testing.T, cl *kgo.Client, id, group, topic string, pid int64, epoch int16, offset int64) int16 {
	t.Helper()
	req := kmsg.NewPtrTxnOffsetCommitRequest()
	req.TransactionalID, req.Group, req.ProducerID, req.ProducerEpoch, req.Generation = id, group, pid, epoch, -1
	req.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: topic, Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{
		{Partition: 0, Offset: offset, LeaderEpoch: -1}}}}
	r, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	return r.Topics[0].Partitions[0].ErrorCode
}

// TxnOffsetCommit is verified against the transactional id's state, as Kafka's KIP-890 verification
// does: a producer that did not add the group to its ongoing transaction (AddOffsetsToTxn), another
// producer id or epoch, or a transaction already ended, is refused, and no offsets are left pending
// for the group (OffsetFetch with RequireStable stays answerable).
func TestTxnOffsetCommitVerified(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	admin := kgoClient(t, nil, a)
	createTopic(t, admin, "ov", 1, nil)
	id, grp := "tx-ov", "g-ov"
	waitTxnCoordinator(t, a, id)
	ctx := testCtx(t)
	txp := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic("ov")}, a)
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, kgo.StringRecord("v")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	pid, epoch, err := txp.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stable := func(what string) {
		t.Helper()
		if got, code := groupOffset(t, admin, grp, "ov", 0, true); code != 0 || got != -1 {
			t.Fatalf("%s: RequireStable answered offset %d, code %v; want no offset, stable", what, got, kerr.ErrorForCode(code))
		}
	}
	wantCode(t, "TxnOffsetCommit without AddOffsetsToTxn", rawTxnOffsetCommit(t, admin, id, grp, "ov", pid, epoch, 5), kerr.InvalidTxnState)
	stable("after a refused commit")
	wantCode(t, "TxnOffsetCommit of another epoch", rawTxnOffsetCommit(t, admin, id, grp, "ov", pid, epoch+1, 5), kerr.InvalidProducerEpoch)
	wantCode(t, "TxnOffsetCommit of another producer", rawTxnOffsetCommit(t, admin, id, grp, "ov", pid+100, epoch, 5), kerr.InvalidProducerIDMapping)
	wantCode(t, "TxnOffsetCommit of an unknown transactional id", rawTxnOffsetCommit(t, admin, "tx-none", grp, "ov", pid, epoch, 5),
		kerr.InvalidProducerIDMapping)

	txnCommitOffset(t, txp, id, grp, "ov", 7) // added, then committed: accepted
	if err := txp.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the abort complete", func() bool {
		s, _, err := tc.client().LoadTxn(ctx, DefaultGroup, id)
		return err == nil && s.Meta.State == coord.TxnCompleteAbort
	})
	wantCode(t, "TxnOffsetCommit after the transaction ended", rawTxnOffsetCommit(t, admin, id, grp, "ov", pid, epoch, 9), kerr.InvalidTxnState)
	stable("after the abort and a late commit")
	snap, err := tc.client().LoadGroup(ctx, DefaultGroup, grp)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 0 {
		t.Fatalf("pending offsets left in etcd: %+v", snap.Pending)
	}
}

// DeleteGroups of an Empty group with offsets pending for an open transaction deletes the group and
// its pending offsets, as Kafka's group coordinator does (tombstones for the committed and the pending
// offsets; NON_EMPTY_GROUP only for a group with members); the transaction then commits without
// bringing the offsets back.
func TestDeleteGroupWithPendingOffsets(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	admin := kgoClient(t, nil, a)
	createTopic(t, admin, "dg", 1, nil)
	id, grp := "tx-dg", "g-dg"
	waitTxnCoordinator(t, a, id)
	ctx := testCtx(t)
	txp := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic("dg")}, a)
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, kgo.StringRecord("v")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txnCommitOffset(t, txp, id, grp, "dg", 3)
	if _, code := groupOffset(t, admin, grp, "dg", 0, true); code != kerr.UnstableOffsetCommit.Code {
		t.Fatalf("RequireStable with an offset pending: %v", kerr.ErrorForCode(code))
	}
	del := kmsg.NewPtrDeleteGroupsRequest()
	del.Groups = []string{grp}
	dr, err := del.RequestWith(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, "DeleteGroups of an Empty group with pending offsets", dr.Groups[0].ErrorCode)
	snap, err := tc.client().LoadGroup(ctx, DefaultGroup, grp)
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Pending) != 0 {
		t.Fatalf("pending offsets left after DeleteGroups: %+v", snap.Pending)
	}
	if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the commit complete", func() bool {
		s, _, err := tc.client().LoadTxn(ctx, DefaultGroup, id)
		return err == nil && s.Meta.State == coord.TxnCompleteCommit
	})
	if got, code := groupOffset(t, admin, grp, "dg", 0, true); code != 0 || got != -1 {
		t.Fatalf("after the commit: offset %d, code %v; want none (the group was deleted)", got, kerr.ErrorForCode(code))
	}
}
