package agent

import (
	"fmt"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Transactions of two producers interleaved on one partition: a read_committed consumer reads only
// the committed ones' records, whatever order the markers come in.
func TestReadCommittedInterleaved(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.Transactions = true })
	createTopic(t, kgoClient(t, nil, a), "il", 1, nil)
	ctx := testCtx(t)
	waitTxnCoordinator(t, a, "tx-il-a")
	waitTxnCoordinator(t, a, "tx-il-b")
	pa := kgoClient(t, []kgo.Opt{kgo.TransactionalID("tx-il-a"), kgo.DefaultProduceTopic("il")}, a)
	pb := kgoClient(t, []kgo.Opt{kgo.TransactionalID("tx-il-b"), kgo.DefaultProduceTopic("il")}, a)
	var want []string
	for round := range 4 {
		if err := pa.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := pb.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			va, vb := fmt.Sprintf("a%d-%d", round, i), fmt.Sprintf("b%d-%d", round, i)
			if err := pa.ProduceSync(ctx, kgo.StringRecord(va)).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := pb.ProduceSync(ctx, kgo.StringRecord(vb)).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if round%2 == 0 {
				want = append(want, vb)
			} else {
				want = append(want, va)
			}
		}
		first, second := pa, pb
		if round >= 2 {
			first, second = pb, pa
		}
		for _, p := range []*kgo.Client{first, second} {
			commit := (p == pb) == (round%2 == 0)
			if err := p.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	for _, r := range consumeAll(t, []*Agent{a}, "il", len(want), kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		got = append(got, string(r.Value))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("read_committed read %q\nwant %q", got, want)
	}
}
