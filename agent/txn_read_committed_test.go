package agent

import (
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// fetchCommitted is a read_committed fetch of one partition from offset.
func fetchCommitted(c *rawConn, topic string, partition int32, offset int64) kmsg.FetchResponseTopicPartition {
	c.t.Helper()
	req := fetchReq(topic, 0, 1, 1<<20, fetchPart{partition, offset, 1 << 20})
	req.IsolationLevel = 1
	return c.roundTrip(req, fetchVersion).(*kmsg.FetchResponse).Topics[0].Partitions[0]
}

// latestOffset is ListOffsets' latest offset of a partition, read_committed or not.
func latestOffset(t *testing.T, c *rawConn, topic string, partition int32, committed bool) int64 {
	t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	if committed {
		req.IsolationLevel = 1
	}
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp = partition, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req, 5).(*kmsg.ListOffsetsResponse)
	return resp.Topics[0].Partitions[0].Offset
}

// read_committed: nothing at or past an open transaction's first offset is served (the last stable
// offset holds there, for Fetch and ListOffsets); once the transaction aborts its records are named
// in the answer's aborted transactions, which consumers drop; a committed transaction's records are
// read. read_uncommitted still reads everything.
func TestReadCommitted(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	ctx := testCtx(t)
	createTopic(t, kgoClient(t, nil, a), "rc", 1, nil)
	id := "tx-rc"
	waitTxnCoordinator(t, a, id)
	txp := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic("rc")}, a)
	plain := kgoClient(t, []kgo.Opt{kgo.DefaultProduceTopic("rc")}, a)
	raw := dialRaw(t, a)
	state := func() string {
		s, _, err := tc.client().LoadTxn(ctx, DefaultGroup, id)
		if err != nil {
			t.Fatal(err)
		}
		return s.Meta.State
	}

	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, kgo.StringRecord("aborted-1")).FirstErr(); err != nil { // offset 0
		t.Fatal(err)
	}
	if err := plain.ProduceSync(ctx, kgo.StringRecord("plain-1")).FirstErr(); err != nil { // offset 1
		t.Fatal(err)
	}
	sp := fetchCommitted(raw, "rc", 0, 0)
	if sp.ErrorCode != 0 || sp.LastStableOffset != 0 || sp.HighWatermark != 2 || len(sp.RecordBatches) != 0 {
		t.Fatalf("read_committed with a transaction open at 0: code %d, lso %d, hwm %d, %d bytes", sp.ErrorCode,
			sp.LastStableOffset, sp.HighWatermark, len(sp.RecordBatches))
	}
	if got := latestOffset(t, raw, "rc", 0, true); got != 0 {
		t.Fatalf("read_committed latest offset %d with a transaction open at 0, want 0", got)
	}
	if got := latestOffset(t, raw, "rc", 0, false); got != 2 {
		t.Fatalf("read_uncommitted latest offset %d, want 2", got)
	}

	if err := txp.EndTransaction(ctx, kgo.TryAbort); err != nil { // marker at 2
		t.Fatal(err)
	}
	waitFor(t, "the abort complete", func() bool { return state() == coord.TxnCompleteAbort })
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, kgo.StringRecord("committed-1")).FirstErr(); err != nil { // offset 3
		t.Fatal(err)
	}
	if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil { // marker at 4
		t.Fatal(err)
	}
	waitFor(t, "the commit complete", func() bool { return state() == coord.TxnCompleteCommit })

	waitFor(t, "the last stable offset at the high watermark", func() bool {
		sp = fetchCommitted(raw, "rc", 0, 0)
		return sp.LastStableOffset == 5 && sp.HighWatermark == 5
	})
	if len(sp.AbortedTransactions) != 1 || sp.AbortedTransactions[0].FirstOffset != 0 {
		t.Fatalf("aborted transactions %+v, want one from offset 0", sp.AbortedTransactions)
	}
	if sp = fetchCommitted(raw, "rc", 0, 3); len(sp.AbortedTransactions) != 0 {
		t.Fatalf("aborted transactions from offset 3 %+v, want none", sp.AbortedTransactions)
	}
	var got []string
	for _, r := range consumeAll(t, []*Agent{a}, "rc", 2, kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		got = append(got, string(r.Value))
	}
	if !slices.Equal(got, []string{"plain-1", "committed-1"}) {
		t.Fatalf("read_committed consumer read %q", got)
	}
	var all []string
	for _, r := range consumeAll(t, []*Agent{a}, "rc", 3) {
		all = append(all, string(r.Value))
	}
	if !slices.Equal(all, []string{"aborted-1", "plain-1", "committed-1"}) {
		t.Fatalf("read_uncommitted consumer read %q", all)
	}
}
