package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// A read_committed fetch that an agent answers by sending the client to its own zone's agent (no
// records) still answers the last stable offset, not the high watermark: a consumer computing its
// lag from it, or an admin asking, must not see an open transaction's offsets as stable.
func TestReadCommittedRedirectLastStable(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	txns := func(zone string) func(c *Config) {
		return func(c *Config) { c.AZ, c.Transactions = zone, true }
	}
	a1 := tc.agent("a1", txns("z1"))
	a2 := tc.agent("a2", txns("z2"))
	ctx := testCtx(t)
	createTopic(t, kgoClient(t, nil, a1), "rcz", 1, nil)
	if err := kgoClient(t, []kgo.Opt{kgo.DefaultProduceTopic("rcz")}, a1, a2).ProduceSync(ctx, kgo.StringRecord("plain")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	txp := kgoClient(t, []kgo.Opt{kgo.TransactionalID("tx-rcz"), kgo.DefaultProduceTopic("rcz")}, a1, a2)
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := txp.ProduceSync(ctx, kgo.StringRecord("open")).FirstErr(); err != nil { // offset 1, left open
		t.Fatal(err)
	}
	raw := dialRaw(t, a1)
	req := fetchReq("rcz", 0, 1, 1<<20, fetchPart{0, 0, 1 << 20})
	req.IsolationLevel, req.Rack = 1, "z2"
	waitFor(t, "a1 to see a2 and the open transaction", func() bool {
		sp := raw.roundTrip(req, fetchVersion).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		return sp.PreferredReadReplica >= 0 && sp.HighWatermark == 2
	})
	sp := raw.roundTrip(req, fetchVersion).(*kmsg.FetchResponse).Topics[0].Partitions[0]
	if sp.LastStableOffset != 1 || len(sp.RecordBatches) != 0 {
		t.Fatalf("read_committed fetch sent to another zone: lso %d, hwm %d, %d bytes; want lso 1 (the open transaction)",
			sp.LastStableOffset, sp.HighWatermark, len(sp.RecordBatches))
	}
	req.IsolationLevel = 0
	if sp = raw.roundTrip(req, fetchVersion).(*kmsg.FetchResponse).Topics[0].Partitions[0]; sp.LastStableOffset != 2 {
		t.Fatalf("read_uncommitted fetch sent to another zone: lso %d, want the high watermark 2", sp.LastStableOffset)
	}
}
