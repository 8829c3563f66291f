package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/auth"
)

// commitTxn runs one transaction of cl producing value to its default topic, committed.
func commitTxn(t *testing.T, cl *kgo.Client, value string) error {
	t.Helper()
	ctx := testCtx(t)
	if err := cl.BeginTransaction(); err != nil {
		return err
	}
	if err := cl.ProduceSync(ctx, kgo.StringRecord(value)).FirstErr(); err != nil {
		_ = cl.EndTransaction(ctx, kgo.TryAbort)
		return err
	}
	return cl.EndTransaction(ctx, kgo.TryCommit)
}

// The transaction APIs are authorized as Kafka's: without Write on its transactional id a producer
// gets no producer id and can add nothing, end nothing, produce nothing, commit no offsets; with it,
// it needs Write on the topics it adds and Read on the group (and topics) whose offsets it commits;
// describing a transaction needs Describe on its id, and ListTransactions lists only those.
func TestTransactionACLs(t *testing.T) {
	t.Parallel()
	tc, a, admin, _ := securedPair(t, func(c *Config) { c.Transactions = true })
	addr := listenerAddr(t, a, ProtocolSASLPlaintext)
	bob := bobConn(t, a, "bob", "bob-secret")
	createTopic(t, admin, "tx-out", 2, nil)
	createTopic(t, admin, "secret", 1, nil)
	for _, id := range []string{"bob-tx", "other-tx"} {
		waitTxnCoordinator(t, a, id)
	}
	str := func(s string) *string { return &s }

	init := kmsg.NewPtrInitProducerIDRequest()
	init.TransactionalID, init.TransactionTimeoutMillis = str("bob-tx"), 60000
	wantCode(t, "InitProducerID without Write on the transactional id",
		rt[*kmsg.InitProducerIDResponse](t, bob, init, 4).ErrorCode, kerr.TransactionalIDAuthorizationFailed)

	grant(t, tc, a,
		auth.ACL{ResourceType: auth.ResourceTransactionalID, Name: "bob-tx", Principal: auth.User("bob"), Operation: auth.OpWrite},
		auth.ACL{ResourceType: auth.ResourceTopic, Name: "tx-out", Principal: auth.User("bob"), Operation: auth.OpWrite},
		auth.ACL{ResourceType: auth.ResourceTopic, Name: "tx-out", Principal: auth.User("bob"), Operation: auth.OpRead},
		auth.ACL{ResourceType: auth.ResourceGroup, Name: "bob-group", Principal: auth.User("bob"), Operation: auth.OpRead})
	bobTxn := secClient(t, addr, nil, scram.Auth{User: "bob", Pass: "bob-secret"}.AsSha512Mechanism(),
		kgo.TransactionalID("bob-tx"), kgo.DefaultProduceTopic("tx-out"))
	if err := commitTxn(t, bobTxn, "by bob"); err != nil {
		t.Fatalf("a transaction with Write on its id and topic: %v", err)
	}
	adminTxn := secClient(t, addr, nil, scram.Auth{User: "admin", Pass: "admin-secret"}.AsSha256Mechanism(),
		kgo.TransactionalID("other-tx"), kgo.DefaultProduceTopic("tx-out"))
	if err := commitTxn(t, adminTxn, "by admin"); err != nil {
		t.Fatal(err)
	}

	// Another transactional id: refused at every step.
	ap := kmsg.NewPtrAddPartitionsToTxnRequest()
	ap.TransactionalID = "other-tx"
	ap.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "tx-out", Partitions: []int32{0}}}
	wantCode(t, "AddPartitionsToTxn of another id", rt[*kmsg.AddPartitionsToTxnResponse](t, bob, ap, 3).Topics[0].Partitions[0].ErrorCode,
		kerr.TransactionalIDAuthorizationFailed)
	end := kmsg.NewPtrEndTxnRequest()
	end.TransactionalID = "other-tx"
	wantCode(t, "EndTxn of another id", rt[*kmsg.EndTxnResponse](t, bob, end, 3).ErrorCode, kerr.TransactionalIDAuthorizationFailed)
	ao := kmsg.NewPtrAddOffsetsToTxnRequest()
	ao.TransactionalID, ao.Group = "other-tx", "bob-group"
	wantCode(t, "AddOffsetsToTxn of another id", rt[*kmsg.AddOffsetsToTxnResponse](t, bob, ao, 3).ErrorCode, kerr.TransactionalIDAuthorizationFailed)
	produce := kmsg.NewPtrProduceRequest()
	produce.TransactionID, produce.Acks, produce.TimeoutMillis = str("other-tx"), -1, 5000
	produce.Topics = []kmsg.ProduceRequestTopic{{Topic: "tx-out", Partitions: []kmsg.ProduceRequestTopicPartition{{Partition: 0}}}}
	wantCode(t, "Produce with another transactional id", rt[*kmsg.ProduceResponse](t, bob, produce, 9).Topics[0].Partitions[0].ErrorCode,
		kerr.TransactionalIDAuthorizationFailed)

	// Its own id: a topic without Write is refused and the rest not attempted; a group without Read too.
	ap.TransactionalID = "bob-tx"
	ap.Topics = []kmsg.AddPartitionsToTxnRequestTopic{{Topic: "tx-out", Partitions: []int32{1}}, {Topic: "secret", Partitions: []int32{0}}}
	aps := rt[*kmsg.AddPartitionsToTxnResponse](t, bob, ap, 3).Topics
	for _, want := range []struct {
		topic string
		code  *kerr.Error
	}{{"tx-out", kerr.OperationNotAttempted}, {"secret", kerr.TopicAuthorizationFailed}} {
		for _, st := range aps {
			if st.Topic == want.topic {
				wantCode(t, "AddPartitionsToTxn of "+want.topic+" with secret", st.Partitions[0].ErrorCode, want.code)
			}
		}
	}
	ao.TransactionalID, ao.Group = "bob-tx", "not-bobs"
	wantCode(t, "AddOffsetsToTxn of a group without Read", rt[*kmsg.AddOffsetsToTxnResponse](t, bob, ao, 3).ErrorCode, kerr.GroupAuthorizationFailed)
	toc := kmsg.NewPtrTxnOffsetCommitRequest()
	toc.TransactionalID, toc.Group, toc.ProducerID, toc.ProducerEpoch = "bob-tx", "not-bobs", 1, 0
	toc.Topics = []kmsg.TxnOffsetCommitRequestTopic{{Topic: "tx-out", Partitions: []kmsg.TxnOffsetCommitRequestTopicPartition{{Partition: 0, Offset: 1}}}}
	wantCode(t, "TxnOffsetCommit to a group without Read", rt[*kmsg.TxnOffsetCommitResponse](t, bob, toc, 3).Topics[0].Partitions[0].ErrorCode,
		kerr.GroupAuthorizationFailed)
	toc.TransactionalID = "other-tx"
	wantCode(t, "TxnOffsetCommit of another id", rt[*kmsg.TxnOffsetCommitResponse](t, bob, toc, 3).Topics[0].Partitions[0].ErrorCode,
		kerr.TransactionalIDAuthorizationFailed)
	toc.TransactionalID, toc.Group = "bob-tx", "bob-group"
	toc.Topics[0].Topic = "secret"
	wantCode(t, "TxnOffsetCommit of a topic without Read", rt[*kmsg.TxnOffsetCommitResponse](t, bob, toc, 3).Topics[0].Partitions[0].ErrorCode,
		kerr.TopicAuthorizationFailed)

	// Describe and list: only what bob may describe (Write implies Describe).
	dt := kmsg.NewPtrDescribeTransactionsRequest()
	dt.TransactionalIDs = []string{"bob-tx", "other-tx"}
	codes := map[string]int16{}
	for _, s := range rt[*kmsg.DescribeTransactionsResponse](t, bob, dt, 0).TransactionStates {
		codes[s.TransactionalID] = s.ErrorCode
	}
	wantOK(t, "DescribeTransactions of bob-tx", codes["bob-tx"])
	wantCode(t, "DescribeTransactions of other-tx", codes["other-tx"], kerr.TransactionalIDAuthorizationFailed)
	listed := func(rc *rawConn) map[string]bool {
		out := map[string]bool{}
		for _, s := range rt[*kmsg.ListTransactionsResponse](t, rc, kmsg.NewPtrListTransactionsRequest(), 0).TransactionStates {
			out[s.TransactionalID] = true
		}
		return out
	}
	if got := listed(bob); !got["bob-tx"] || got["other-tx"] {
		t.Errorf("ListTransactions as bob: %v, want bob-tx only", got)
	}
	if got := listed(bobConn(t, a, "admin", "admin-secret")); !got["bob-tx"] || !got["other-tx"] {
		t.Errorf("ListTransactions as admin: %v, want both", got)
	}

	// DescribeProducers needs Read on the topic.
	dp := kmsg.NewPtrDescribeProducersRequest()
	dp.Topics = []kmsg.DescribeProducersRequestTopic{{Topic: "secret", Partitions: []int32{0}}}
	wantCode(t, "DescribeProducers of a topic without Read", rt[*kmsg.DescribeProducersResponse](t, bob, dp, 0).Topics[0].Partitions[0].ErrorCode,
		kerr.TopicAuthorizationFailed)
	dp.Topics[0].Topic = "tx-out"
	wantOK(t, "DescribeProducers of a topic with Read", rt[*kmsg.DescribeProducersResponse](t, bob, dp, 0).Topics[0].Partitions[0].ErrorCode)

	// An idempotent producer still needs IdempotentWrite on the cluster or Write on some topic: bob has the latter.
	idem := kmsg.NewPtrInitProducerIDRequest()
	if r := rt[*kmsg.InitProducerIDResponse](t, bob, idem, 4); r.ErrorCode != 0 {
		t.Errorf("idempotent InitProducerID with Write on a topic: %s", errName(r.ErrorCode))
	}
}
