package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// labelledCounter reads the series of a counter of a's registry with a label of value label.
func labelledCounter(t *testing.T, a *Agent, name, label string) float64 {
	t.Helper()
	return labelledSeries(t, a, name, label).GetCounter().GetValue()
}

// With Config.Transactions the agent reports its open transactions, their ends by outcome,
// and how far open transactions hold read_committed consumers back on the partitions it leads.
func TestTxnMetrics(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	ctx := testCtx(t)
	createTopic(t, kgoClient(t, nil, a), "tm", 2, nil)
	id := "tx-metrics"
	waitTxnCoordinator(t, a, id)
	txp := kgoClient(t, []kgo.Opt{kgo.TransactionalID(id), kgo.DefaultProduceTopic("tm"), kgo.RecordPartitioner(kgo.ManualPartitioner())}, a)
	if err := txp.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"a", "b", "c"} {
		if err := txp.ProduceSync(ctx, &kgo.Record{Value: []byte(v), Partition: 1}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the open transaction's lag", func() bool {
		return metricValue(t, a, "streamhouse_txn_lso_lag_max") == 3 && metricValue(t, a, "streamhouse_txn_unstable_partitions") == 1
	})
	if got := gaugeValue(t, a, "streamhouse_txn_open_transactions", "ongoing"); got != 1 {
		t.Fatalf("open ongoing transactions %v, want 1", got)
	}
	if err := txp.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lag gone with the commit marker", func() bool {
		return metricValue(t, a, "streamhouse_txn_lso_lag_max") == 0 && metricValue(t, a, "streamhouse_txn_unstable_partitions") == 0
	})
	if got := labelledCounter(t, a, "streamhouse_txn_ends_total", "commit"); got != 1 {
		t.Fatalf("commits %v, want 1", got)
	}
	if got := labelledCounter(t, a, "streamhouse_txn_ends_total", "timeout"); got != 0 {
		t.Fatalf("timeouts %v, want 0", got)
	}
	if got := metricValue(t, a, "streamhouse_txn_coordinator_shard_loads_total"); got < 1 {
		t.Fatalf("shard loads %v, want at least 1", got)
	}
}
