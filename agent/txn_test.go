package agent

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// advertised reports which of keys an agent lists in ApiVersions.
func advertised(t *testing.T, cl *kgo.Client, keys ...kmsg.Key) map[kmsg.Key]bool {
	t.Helper()
	resp, err := kmsg.NewPtrApiVersionsRequest().RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	out := map[kmsg.Key]bool{}
	for _, k := range resp.ApiKeys {
		for _, want := range keys {
			if k.ApiKey == int16(want) {
				out[want] = true
			}
		}
	}
	return out
}

// Without Config.Transactions an agent answers as before: the transaction APIs are not
// advertised, InitProducerID with a transactional id and FindCoordinator for one are refused.
func TestTransactionsOffByDefault(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	ctx := testCtx(t)
	if got := advertised(t, cl, kmsg.AddPartitionsToTxn, kmsg.AddOffsetsToTxn, kmsg.EndTxn, kmsg.TxnOffsetCommit); len(got) != 0 {
		t.Fatalf("advertised without the flag: %v", got)
	}
	init := kmsg.NewPtrInitProducerIDRequest()
	id := "tx"
	init.TransactionalID, init.TransactionTimeoutMillis = &id, 60000
	resp, err := init.RequestWith(ctx, cl.Broker(int(a.nodeID(a.cfg.ID)))) // to the agent itself: no coordinator lookup
	if err != nil || resp.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("InitProducerID with a transactional id: %+v, %v", resp, err)
	}
	var sc kmsg.FindCoordinatorResponseCoordinator
	if err := a.findCoordinator(client{}, coordinatorTypeTxn, id, &sc); !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("FindCoordinator for a transactional id: %v", err)
	}
}

// With Config.Transactions: the APIs are advertised, FindCoordinator names the shard's
// leader, InitProducerID bumps the epoch and fences the older producer, AddPartitionsToTxn writes the
// transaction to etcd before answering (unknown partitions refused as Kafka refuses them), and EndTxn
// answers once the decision is in etcd; the markers then complete it.
func TestExperimentalTransactionCoordinator(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	cl := kgoClient(t, nil, a)
	ctx := testCtx(t)
	createTopic(t, cl, "data", 2, nil)
	if got := advertised(t, cl, kmsg.AddPartitionsToTxn, kmsg.AddOffsetsToTxn, kmsg.EndTxn, kmsg.DescribeTransactions, kmsg.ListTransactions); len(got) != 5 {
		t.Fatalf("advertised with the flag: %v", got)
	}
	id := "tx"
	waitFor(t, "a transaction coordinator", func() bool {
		var sc kmsg.FindCoordinatorResponseCoordinator
		return a.findCoordinator(client{}, coordinatorTypeTxn, id, &sc) == nil && sc.NodeID == a.nodeID(a.cfg.ID)
	})
	init := func(p int64, e int16) *kmsg.InitProducerIDResponse {
		t.Helper()
		req := kmsg.NewPtrInitProducerIDRequest()
		req.TransactionalID, req.TransactionTimeoutMillis, req.ProducerID, req.ProducerEpoch = &id, 60000, p, e
		var resp *kmsg.InitProducerIDResponse
		waitFor(t, "InitProducerID past the shard's load", func() bool {
			var err error
			resp, err = req.RequestWith(ctx, cl)
			if err != nil {
				t.Fatal(err)
			}
			return resp.ErrorCode != kerr.CoordinatorLoadInProgress.Code && resp.ErrorCode != kerr.CoordinatorNotAvailable.Code &&
				resp.ErrorCode != kerr.NotCoordinator.Code
		})
		return resp
	}
	first := init(-1, -1)
	wantOK(t, "first InitProducerID", first.ErrorCode)
	second := init(-1, -1)
	wantOK(t, "second InitProducerID", second.ErrorCode)
	if second.ProducerID != first.ProducerID || second.ProducerEpoch != first.ProducerEpoch+1 {
		t.Fatalf("second producer %d/%d after %d/%d", second.ProducerID, second.ProducerEpoch, first.ProducerID, first.ProducerEpoch)
	}

	add := func(epoch int16, topic string, partitions ...int32) *kmsg.AddPartitionsToTxnResponse {
		t.Helper()
		req := kmsg.NewPtrAddPartitionsToTxnRequest()
		req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, first.ProducerID, epoch
		rt := kmsg.NewAddPartitionsToTxnRequestTopic()
		rt.Topic, rt.Partitions = topic, partitions
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if code := add(first.ProducerEpoch, "data", 0).Topics[0].Partitions[0].ErrorCode; code != kerr.ProducerFenced.Code {
		t.Fatalf("the older producer's AddPartitionsToTxn: %s, want PRODUCER_FENCED", errName(code))
	}
	unknown := add(second.ProducerEpoch, "data", 0, 9).Topics[0].Partitions
	if unknown[0].ErrorCode != kerr.OperationNotAttempted.Code || unknown[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("a request naming an unknown partition: %s, %s", errName(unknown[0].ErrorCode), errName(unknown[1].ErrorCode))
	}
	wantOK(t, "AddPartitionsToTxn", add(second.ProducerEpoch, "data", 0, 1).Topics[0].Partitions[1].ErrorCode)
	stored := func() coord.TxnMeta {
		t.Helper()
		s, ok, err := tc.client().LoadTxn(ctx, DefaultGroup, id)
		if err != nil || !ok {
			t.Fatalf("transaction state in etcd: %v, %v", ok, err)
		}
		return s.Meta
	}
	if m := stored(); m.State != coord.TxnOngoing || len(m.Partitions) != 2 || m.Epoch != second.ProducerEpoch {
		t.Fatalf("stored after AddPartitionsToTxn: %+v", m)
	}

	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID, end.ProducerID, end.ProducerEpoch, end.Commit = id, second.ProducerID, second.ProducerEpoch, true
	resp, err := end.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	wantOK(t, "EndTxn", resp.ErrorCode)
	if m := stored(); m.State != coord.TxnPrepareCommit && m.State != coord.TxnCompleteCommit {
		t.Fatalf("stored when EndTxn answered: %s, want the decision", m.State)
	}
	// The markers land and the transaction completes; EndTxn retried then is answered as done.
	waitFor(t, "the transaction complete", func() bool { return stored().State == coord.TxnCompleteCommit })
	if resp, err = end.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 {
		t.Fatalf("EndTxn retried once complete: %+v, %v", resp, err)
	}

	self := cl.Broker(int(a.nodeID(a.cfg.ID)))
	desc := kmsg.NewPtrDescribeTransactionsRequest()
	desc.TransactionalIDs = []string{id, "never"}
	dresp, err := desc.RequestWith(ctx, self)
	if err != nil {
		t.Fatal(err)
	}
	if st := dresp.TransactionStates[0]; st.ErrorCode != 0 || st.State != coord.TxnCompleteCommit || st.ProducerEpoch != second.ProducerEpoch ||
		len(st.Topics) != 1 || st.Topics[0].Topic != "data" || len(st.Topics[0].Partitions) != 2 {
		t.Fatalf("DescribeTransactions: %+v", st)
	}
	if st := dresp.TransactionStates[1]; st.ErrorCode != kerr.TransactionalIDNotFound.Code {
		t.Fatalf("DescribeTransactions of an unknown id: %s", errName(st.ErrorCode))
	}
	list := kmsg.NewPtrListTransactionsRequest()
	lresp, err := list.RequestWith(ctx, self)
	if err != nil || lresp.ErrorCode != 0 || len(lresp.TransactionStates) != 1 || lresp.TransactionStates[0].TransactionalID != id {
		t.Fatalf("ListTransactions: %+v, %v", lresp, err)
	}
	list.StateFilters = []string{coord.TxnOngoing, "Bogus"}
	if lresp, err = list.RequestWith(ctx, self); err != nil || len(lresp.TransactionStates) != 0 || len(lresp.UnknownStateFilters) != 1 {
		t.Fatalf("ListTransactions of Ongoing and Bogus: %+v, %v", lresp, err)
	}
}

// PRODUCER_FENCED is answered as INVALID_PRODUCER_EPOCH to the versions before KIP-588's.
func TestTxnCodeBeforeKIP588(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err     error
		version int16
		want    int16
	}{
		{kerr.ProducerFenced, 1, kerr.InvalidProducerEpoch.Code},
		{kerr.ProducerFenced, 2, kerr.ProducerFenced.Code},
		{kerr.ConcurrentTransactions, 0, kerr.ConcurrentTransactions.Code},
		{nil, 0, 0},
	} {
		if got := txnCode(tc.err, tc.version, 2); got != tc.want {
			t.Errorf("%v at v%d: %s, want %s", tc.err, tc.version, errName(got), errName(tc.want))
		}
	}
}
