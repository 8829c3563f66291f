package agent

import (
	"maps"
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

// With Config.Transactions a producer's transactional batches are accepted on the partitions
// its transaction added, and only there: a batch for a partition not in the transaction is
// INVALID_TXN_STATE (it would open a transaction nobody ends), one of an older producer epoch
// INVALID_PRODUCER_EPOCH, one without the request's transactional id INVALID_RECORD, as Kafka
// answers. The accepted batches are recorded as transactional in the partition's commit records.
func TestTransactionalProduce(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
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
	// The view knows the producer's transaction open on the partition, from its first batch.
	st, _ := a.cache.PartitionState(t0.TP(0))
	if len(st.Producers) != 1 || !st.Producers[0].TxnOpen || st.Producers[0].TxnFirst != 0 {
		t.Fatalf("producers of partition 0: %+v", st.Producers)
	}
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
	on := tc.agent("a1", func(c *Config) { c.Transactions = true })
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

// A transactional producer writing through an agent that leads half of the partitions: the
// sequencing is forwarded with the verification, every batch is taken, and the commit's markers are
// written by each partition's leader.
func TestTransactionalProduceForwarded(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	flag := func(c *Config) { c.Transactions = true }
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
	ctx := testCtx(t)
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("transactional produce through a non-leader: %v", err)
	}
	// The commit's markers reach both leaders (one through the marker API), and every agent's view
	// serves them.
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the transaction complete", func() bool {
		s, _, err := tc.client().LoadTxn(ctx, DefaultGroup, "tx-fwd")
		return err == nil && s.Meta.State == coord.TxnCompleteCommit
	})
	for _, a := range []*Agent{a1, a2} {
		raw := dialRaw(t, a)
		for p := range int32(4) {
			waitFor(t, "the marker in the view", func() bool { return raw.highWatermark("txfwd", p) == 2 })
			if got := controlBatches(t, raw.fetchOne("txfwd", p, 0, 1<<20).RecordBatches); len(got) != 1 || !got[1] {
				t.Fatalf("agent %s, partition %d: control batches %v, want a commit at 1", a.cfg.ID, p, got)
			}
		}
	}
}

// controlBatches lists the (offset, commit) of the control batches in a fetch answer's records.
func controlBatches(t *testing.T, records []byte) map[int64]bool {
	t.Helper()
	out := map[int64]bool{}
	for len(records) > 0 {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(records); err != nil {
			t.Fatal(err)
		}
		if b.Attributes&0x20 != 0 {
			var r kmsg.Record
			if err := r.ReadFrom(b.Records); err != nil {
				t.Fatal(err)
			}
			var key kmsg.ControlRecordKey
			if err := key.ReadFrom(r.Key); err != nil {
				t.Fatal(err)
			}
			out[b.FirstOffset] = key.Type == kmsg.ControlRecordKeyTypeCommit
		}
		records = records[12+int(b.Length):]
	}
	return out
}

// EndTxn's decision reaches the partitions: each partition of the transaction gets its commit or
// abort marker (a control batch at the partition's next offset), the transaction completes, and the
// producer goes on with its next transaction. A consumer reads the records around the markers.
func TestTransactionMarkers(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	ctx := testCtx(t)
	createTopic(t, kgoClient(t, nil, a), "data", 2, nil)
	id := "tx-markers"
	waitTxnCoordinator(t, a, id)
	cl := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner())}, a)
	state := func() string {
		s, _, err := tc.client().LoadTxn(ctx, DefaultGroup, id)
		if err != nil {
			t.Fatal(err)
		}
		return s.Meta.State
	}
	run := func(commit kgo.TransactionEndTry, values ...string) {
		t.Helper()
		if err := cl.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i, v := range values {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "data", Partition: int32(i % 2), Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cl.EndTransaction(ctx, commit); err != nil {
			t.Fatal(err)
		}
		want := coord.TxnCompleteCommit
		if commit == kgo.TryAbort {
			want = coord.TxnCompleteAbort
		}
		waitFor(t, "the transaction "+want, func() bool { return state() == want })
	}
	run(kgo.TryCommit, "c0", "c1", "c2") // partition 0: c0 c2 marker; partition 1: c1 marker
	run(kgo.TryAbort, "a0", "a1")        // partition 0: a0 marker; partition 1: a1 marker
	run(kgo.TryCommit, "d0")             // partition 0: d0 marker (only partition 0 was added)

	raw := dialRaw(t, a)
	for p, want := range map[int32]map[int64]bool{0: {2: true, 4: false, 6: true}, 1: {1: true, 3: false}} {
		if hwm := raw.highWatermark("data", p); hwm != int64(len(want))+map[int32]int64{0: 4, 1: 2}[p] {
			t.Fatalf("partition %d: high watermark %d", p, hwm)
		}
		got := controlBatches(t, raw.fetchOne("data", p, 0, 1<<20).RecordBatches)
		if len(got) != len(want) {
			t.Fatalf("partition %d: control batches %v, want %v", p, got, want)
		}
		for off, commit := range want {
			if c, ok := got[off]; !ok || c != commit {
				t.Fatalf("partition %d: control batches %v, want %v", p, got, want)
			}
		}
	}
	// Each marker names its transaction's first offset on the partition; no transaction is open.
	for p, want := range map[int32]map[int64]int64{0: {2: 0, 4: 3, 6: 5}, 1: {1: 0, 3: 2}} {
		ptp := topicTP(t, a, "data", p)
		waitFor(t, "the markers in the view", func() bool {
			got := map[int64]int64{}
			for _, e := range a.cache.Entries(ptp, 0, 1<<20) {
				if e.Marker != nil {
					got[e.BaseOffset] = e.Marker.FirstOffset
				}
			}
			return maps.Equal(got, want)
		})
		st, _ := a.cache.PartitionState(ptp)
		for _, ps := range st.Producers {
			if ps.TxnOpen {
				t.Fatalf("partition %d: producer %d has a transaction open at %d after its markers", p, ps.ID, ps.TxnFirst)
			}
		}
	}
	// read_uncommitted: every data record, no control record.
	recs := consumeAll(t, []*Agent{a}, "data", 6)
	if len(recs) != 6 {
		t.Fatalf("consumed %d records, want 6", len(recs))
	}

	// A batch verified before the last transaction's end (its verification's revision older than
	// the decision the marker carried out) reaches the leader late: refused, nothing written.
	s, _, err := tc.client().LoadTxn(ctx, DefaultGroup, id)
	if err != nil {
		t.Fatal(err)
	}
	ctp := topicTP(t, a, "data", 0)
	late := putObject(t, tc, "a2", ctp, txnBatch(s.Meta.ProducerID, s.Meta.Epoch, 0, "late"))[0]
	late.TxnRev = 1 // long before the last Prepare write
	if got := dialInternal(t, a, "a2").sequence(t, late)[0]; got.Code != kerr.InvalidTxnState.Code {
		t.Fatalf("a late transactional batch: %s, want INVALID_TXN_STATE", errName(got.Code))
	}
	if hwm := raw.highWatermark("data", 0); hwm != 7 {
		t.Fatalf("high watermark %d after a late batch, want 7", hwm)
	}
}

// A marker sent again for the same decision (a new coordinator re-sends every marker of a Prepare*
// transaction) is answered as written and writes nothing; a marker for a decision that is no longer
// the transaction's state writes nothing either.
func TestMarkerSentAgain(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	ctx := testCtx(t)
	raw := ledTopicConn(t, a, "again")
	tp := topicTP(t, a, "again", 0)
	// A decision the coordinator does not know of: a transactional id's key written here.
	key := tc.client().Prefix() + "txns/" + DefaultGroup + "/elsewhere"
	put, err := tc.client().Etcd().Put(ctx, key, "{}")
	if err != nil {
		t.Fatal(err)
	}
	peer := dialInternal(t, a, "a2")
	send := func(version int64) markerResult {
		t.Helper()
		req := &markerRequest{NS: DefaultGroup, ID: "elsewhere", Version: version, ProducerID: 77, Epoch: 0, Commit: false,
			Partitions: []markerTP{{Topic: tp.Topic, Partition: tp.Partition}}}
		_, body, err := peer.roundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		var resp markerResponse
		if err := resp.ReadFrom(body); err != nil || len(resp.Results) != 1 {
			t.Fatalf("marker answer %+v, %v", resp, err)
		}
		return resp.Results[0]
	}
	for i := range 2 {
		if r := send(put.Header.Revision); r.Code != 0 || r.Changed {
			t.Fatalf("marker, attempt %d: %+v", i+1, r)
		}
		if hwm := raw.highWatermark("again", 0); hwm != 1 {
			t.Fatalf("high watermark %d after attempt %d, want 1", hwm, i+1)
		}
	}
	if got := controlBatches(t, raw.fetchOne("again", 0, 0, 1<<20).RecordBatches); len(got) != 1 || got[0] {
		t.Fatalf("control batches %v, want an abort at 0", got)
	}
	if r := send(put.Header.Revision - 1); !r.Changed {
		t.Fatalf("a marker for a stale decision: %+v, want changed", r)
	}
	if hwm := raw.highWatermark("again", 0); hwm != 1 {
		t.Fatalf("high watermark %d after a stale marker, want 1", hwm)
	}
}
