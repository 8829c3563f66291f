package txn

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/coord"
)

// openGauge is streamhouse_txn_open_transactions{state} as reg reports it.
func openGauge(t *testing.T, reg *prometheus.Registry, state string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "streamhouse_txn_open_transactions" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "state" && l.GetValue() == state {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no streamhouse_txn_open_transactions{state=%q}", state)
	return 0
}

// The coordinator counts transactions' ends by outcome (a commit, an abort, a timeout's abort, a
// newer producer's fencing abort), the open transactions by state, the shards it loads, the decided
// transactions a load resumes and how long completions take.
func TestMetrics(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	store.txns["left"] = coord.TxnSnapshot{ID: "left", Version: 60, Meta: coord.TxnMeta{ProducerID: 9, Epoch: 4, PrevProducerID: -1,
		PrevEpoch: -1, TimeoutMs: 1000, State: coord.TxnPrepareCommit, Partitions: []coord.TP{{Topic: topicA}}, StartMs: 1, UpdateMs: 2}}
	reg := prometheus.NewRegistry()
	h := newHarness(t, store, func(c *Config) { c.Registerer = reg })
	ctx := context.Background()
	tps := []coord.TP{{Topic: topicA, Partition: 1}}
	begin := func(id string, timeoutMs int32) ProducerIDAndEpoch {
		t.Helper()
		p, err := h.c.InitProducerID(ctx, id, timeoutMs, NoProducer)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.c.AddPartitions(ctx, id, p, tps); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pc := begin("commits", 60000)
	waitFor(t, "the decided transaction the load found completed", func() bool {
		s, _ := h.store.get("left")
		return s.Meta.State == coord.TxnCompleteCommit
	})
	pa := begin("aborts", 60000)
	begin("times-out", 1000)
	begin("fenced", 60000)
	if got := openGauge(t, reg, "ongoing"); got != 4 {
		t.Fatalf("open ongoing transactions %v, want 4", got)
	}
	if err := h.c.EndTxn(ctx, "commits", pc, true); err != nil {
		t.Fatal(err)
	}
	if err := h.c.EndTxn(ctx, "aborts", pa, false); err != nil {
		t.Fatal(err)
	}
	h.now.Add(1001)
	h.c.check(ctx)
	if _, err := h.c.InitProducerID(ctx, "fenced", 60000, NoProducer); err == nil {
		t.Fatal("InitProducerID over an ongoing transaction answered at once")
	}
	for id, state := range map[string]string{"commits": coord.TxnCompleteCommit, "aborts": coord.TxnCompleteAbort,
		"times-out": coord.TxnCompleteAbort, "fenced": coord.TxnCompleteAbort} {
		waitFor(t, id+" "+state, func() bool { s, _ := h.store.get(id); return s.Meta.State == state })
	}
	for outcome, want := range map[string]float64{OutcomeCommit: 1, OutcomeAbort: 1, OutcomeTimeout: 1, OutcomeFenced: 1} {
		if got := testutil.ToFloat64(h.c.m.ends.WithLabelValues(outcome)); got != want {
			t.Errorf("streamhouse_txn_ends_total{outcome=%q} = %v, want %v", outcome, got, want)
		}
	}
	for _, state := range []string{"ongoing", "prepare_commit", "prepare_abort"} {
		if got := openGauge(t, reg, state); got != 0 {
			t.Errorf("open %s transactions %v after they all completed", state, got)
		}
	}
	if loads, resumed := testutil.ToFloat64(h.c.m.loads), testutil.ToFloat64(h.c.m.resumed); loads != 1 || resumed != 1 {
		t.Errorf("shard loads %v, resumed completions %v; want 1, 1", loads, resumed)
	}
	if n := testutil.CollectAndCount(h.c.m.completion); n != 1 {
		t.Errorf("completion histogram: %d series", n)
	}
}

// waitFor polls cond until it holds, for at most 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
