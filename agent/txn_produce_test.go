package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
	"github.com/streamhouse/streamhouse/coord"
)

// txnBatch is a transactional batch (attributes bit 4) of producer pid at epoch, sequence seq.
func txnBatch(pid int64, epoch int16, seq int32, values ...string) []byte {
	b := valueBatch(pid, epoch, seq, nil, values...)
	b[22] |= 1 << 4 // attributes: transactional
	return kwiretest.Seal(b)
}

// txnProduce produces batch to topic/partition with transactional id txnID (nil: none) on c.
func txnProduce(c *rawConn, txnID *string, topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	c.t.Helper()
	req := produceReq(topic, -1, map[int32][]byte{partition: batch})
	req.TransactionID = txnID
	return producePart(c.t, c.roundTrip(req, produceVersion))
}

// waitTxnCoordinator waits until a leads id's transaction shard.
func waitTxnCoordinator(t *testing.T, a *Agent, id string) {
	t.Helper()
	waitFor(t, "a transaction coordinator", func() bool {
		var sc kmsg.FindCoordinatorResponseCoordinator
		return a.findCoordinator(client{}, coordinatorTypeTxn, id, &sc) == nil && sc.NodeID == a.nodeID(a.cfg.ID)
	})
}

// With --experimental-transactions a producer's transactional batches are accepted on the partitions
// its transaction added, and only there: a batch for a partition not in the transaction is
// INVALID_TXN_STATE (it would open a transaction nobody ends), one of an older producer epoch
// INVALID_PRODUCER_EPOCH, one without the request's transactional id INVALID_RECORD, as Kafka
// answers. The accepted batches are recorded as transactional in the partition's commit records.
func TestTransactionalProduce(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.ExperimentalTransactions = true })
	ctx := testCtx(t)
	createTopic(t, kgoClient(t, nil, a), "data", 2, nil)
	id := "tx-produce"
	waitTxnCoordinator(t, a, id)

	cl := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner())}, a)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "data", Partition: 0, Value: []byte("in-txn")}).FirstErr(); err != nil {
		t.Fatalf("a transactional produce to a partition of the transaction: %v", err)
	}
	s, ok, err := tc.client().LoadTxn(ctx, DefaultGroup, id)
	if err != nil || !ok || s.Meta.State != coord.TxnOngoing {
		t.Fatalf("transaction state: %+v, %v, %v", s, ok, err)
	}
	pid, epoch := s.Meta.ProducerID, s.Meta.Epoch

	raw := dialRaw(t, a)
	wantCode(t, "a transactional batch for a partition not in the transaction",
		txnProduce(raw, &id, "data", 1, txnBatch(pid, epoch, 0, "stray")).ErrorCode, kerr.InvalidTxnState)
	wantCode(t, "a transactional batch of an older producer epoch",
		txnProduce(raw, &id, "data", 0, txnBatch(pid, epoch-1, 0, "zombie")).ErrorCode, kerr.InvalidProducerEpoch)
	wantCode(t, "a transactional batch without the request's transactional id",
		txnProduce(raw, nil, "data", 0, txnBatch(pid, epoch, 1, "no-id")).ErrorCode, kerr.InvalidRecord)
	other := "someone-else"
	wantCode(t, "a transactional batch under another transactional id",
		txnProduce(raw, &other, "data", 0, txnBatch(pid, epoch, 1, "other")).ErrorCode, kerr.InvalidProducerIDMapping)
	// The producer's next batch on its partition is still in sequence: the refusals wrote nothing.
	wantOK(t, "the producer's next transactional batch",
		txnProduce(raw, &id, "data", 0, txnBatch(pid, epoch, 1, "in-txn-2")).ErrorCode)

	// Both batches are in the partition's commit records as transactional (the view reads them back).
	t0, _ := a.cache.Topic("data")
	waitFor(t, "the transactional batches in the view", func() bool {
		pi, _ := a.cache.PartitionIndex(t0.TP(0))
		var transactional int
		for _, e := range pi.Tail {
			for _, b := range e.Batches {
				if b.ID == pid && b.Transactional {
					transactional++
				}
			}
		}
		return transactional == 2
	})
}

// Without the flag a transactional batch is refused as before, with or without a transactional id.
func TestTransactionalProduceOffByDefault(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	createTopic(t, kgoClient(t, nil, a), "data", 1, nil)
	raw := dialRaw(t, a)
	id := "tx"
	wantCode(t, "a transactional produce", txnProduce(raw, &id, "data", 0, txnBatch(1, 0, 0, "v")).ErrorCode,
		kerr.TransactionalIDAuthorizationFailed)
	wantCode(t, "a transactional batch", txnProduce(raw, nil, "data", 0, txnBatch(1, 0, 0, "v")).ErrorCode, kerr.InvalidRecord)
}

// A leader takes a forwarded transactional batch only with the verification of the agent that took
// the Produce request (its revision); without transactions served, not at all.
func TestForwardedTransactionalBatch(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	on := tc.agent("a1", func(c *Config) { c.ExperimentalTransactions = true })
	off := tc.agent("a3")
	ledTopicConn(t, on, "fwd-on")
	ledTopicConn(t, off, "fwd-off")
	for _, x := range []struct {
		a     *Agent
		topic string
		want  [2]*kerr.Error // without and with a revision
	}{
		{on, "fwd-on", [2]*kerr.Error{kerr.InvalidRecord, nil}},
		{off, "fwd-off", [2]*kerr.Error{kerr.InvalidRecord, kerr.InvalidRecord}},
	} {
		tp := topicTP(t, x.a, x.topic, 0)
		peer := dialInternal(t, x.a, "a2")
		for i, rev := range []int64{0, 7} {
			app := putObject(t, tc, "a2", tp, txnBatch(5, 0, 0, "forwarded"))[0]
			app.TxnRev = rev
			got := peer.sequence(t, app)[0]
			want := int16(0)
			if x.want[i] != nil {
				want = x.want[i].Code
			}
			if got.Code != want {
				t.Fatalf("%s, revision %d: %s, want %s", x.topic, rev, errName(got.Code), errName(want))
			}
		}
	}
}

// A transactional producer writing through an agent that leads none of the partitions: the
// sequencing is forwarded with the verification, and every batch is taken.
func TestTransactionalProduceForwarded(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	flag := func(c *Config) { c.ExperimentalTransactions = true }
	a1 := tc.agent("a1", flag, func(c *Config) { c.AZ = "z1" })
	a2 := tc.agent("a2", flag, func(c *Config) { c.AZ = "z2" })
	createTopic(t, kgoClient(t, nil, a1, a2), "txfwd", 4, nil)
	waitFor(t, "leadership balanced", func() bool { return leadsOf(a1, "txfwd") == 2 && leadsOf(a2, "txfwd") == 2 })
	cl := kgoClient(t, []kgo.Opt{kgo.ClientID("app;az=z2"), kgo.TransactionalID("tx-fwd"),
		kgo.RecordPartitioner(kgo.ManualPartitioner())}, a2)
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for p := range int32(4) {
		recs = append(recs, &kgo.Record{Topic: "txfwd", Partition: p, Value: []byte("v")})
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("transactional produce through a non-leader: %v", err)
	}
}
