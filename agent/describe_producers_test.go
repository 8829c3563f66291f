package agent

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeProducers is kadm's DescribeProducers of one partition.
func describeProducers(t *testing.T, cl *kgo.Client, topic string, p int32) kadm.DescribedProducersPartition {
	t.Helper()
	got, err := kadm.NewClient(cl).DescribeProducers(testCtx(t), kadm.TopicsSet{topic: {p: {}}})
	if err != nil {
		t.Fatal(err)
	}
	return got[topic].Partitions[p]
}

// DescribeProducers lists a partition's producers as its leader knows them: an idempotent producer's
// id, epoch and last sequence, a transactional producer's open transaction's first offset until its
// marker; another agent answers NOT_LEADER_OR_FOLLOWER, an unknown partition
// UNKNOWN_TOPIC_OR_PARTITION.
func TestDescribeProducers(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	on := func(c *Config) { c.Transactions = true }
	a1, a2 := tc.agent("a1", on), tc.agent("a2", on)
	ctx := testCtx(t)
	admin := kgoClient(t, nil, a1, a2)
	createTopic(t, admin, "dp", 1, nil)
	id := "tx-dp"
	txp := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic("dp")}, a1, a2)
	idem := kgoClient(t, []kgo.Opt{kgo.DefaultProduceTopic("dp")}, a1, a2)
	for _, v := range []string{"i-0", "i-1", "i-2"} { // offsets 0-2, sequences 0-2
		if err := idem.ProduceSync(ctx, kgo.StringRecord(v)).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, kgo.StringRecord("t-0")).FirstErr(); err != nil { // offset 3
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Minute).UnixMilli()
	var dp kadm.DescribedProducersPartition
	waitFor(t, "both producers described", func() bool {
		dp = describeProducers(t, admin, "dp", 0)
		return dp.Err == nil && len(dp.ActiveProducers) == 2
	})
	var txn, plain kadm.DescribedProducer
	for _, p := range dp.ActiveProducers {
		if p.CurrentTxnStartOffset >= 0 {
			txn = p
		} else {
			plain = p
		}
	}
	if txn.CurrentTxnStartOffset != 3 || txn.LastSequence != 0 || txn.ProducerID < 0 || txn.LastTimestamp < before {
		t.Errorf("transactional producer: %+v, want its transaction open at 3, sequence 0", txn)
	}
	if plain.LastSequence != 2 || plain.ProducerEpoch != 0 || plain.LastTimestamp < before || plain.CoordinatorEpoch != -1 {
		t.Errorf("idempotent producer: %+v, want last sequence 2, epoch 0", plain)
	}
	if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the transaction closed on the partition", func() bool {
		dp = describeProducers(t, admin, "dp", 0)
		p, ok := dp.ActiveProducers[txn.ProducerID]
		return dp.Err == nil && ok && p.CurrentTxnStartOffset == -1
	})

	tp := topicTP(t, a1, "dp", 0)
	other := a1
	if a1.lead.leading(tp) != nil {
		other = a2
	}
	req := kmsg.NewPtrDescribeProducersRequest()
	rt := kmsg.NewDescribeProducersRequestTopic()
	rt.Topic, rt.Partitions = "dp", []int32{0, 7}
	req.Topics = append(req.Topics, rt)
	resp := dialRaw(t, other).roundTrip(req, 0).(*kmsg.DescribeProducersResponse)
	ps := resp.Topics[0].Partitions
	wantCode(t, "DescribeProducers at a follower", ps[0].ErrorCode, kerr.NotLeaderForPartition)
	wantCode(t, "DescribeProducers of a partition that does not exist", ps[1].ErrorCode, kerr.UnknownTopicOrPartition)
}
