package coord

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func txnMeta(state string, tps ...TP) *TxnMeta {
	return &TxnMeta{ProducerID: 1000, Epoch: 3, PrevProducerID: -1, PrevEpoch: -1, TimeoutMs: 60000, State: state,
		Partitions: tps, Groups: []string{"g"}, StartMs: 5, UpdateMs: 6}
}

// A transactional id's state round-trips (partitions grouped by topic, sorted, each once), ids with
// '/' and '%' stay apart, LoadTxns filters and reads only its namespace, and a deletion removes it.
func TestWriteAndLoadTxns(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	f, data := groupShard(t, c)
	other := newTopic(t, c, "other", 2)
	meta := txnMeta(TxnOngoing, other.TP(1), data.TP(3), data.TP(0), data.TP(3))
	versions := map[string]int64{}
	for _, id := range []string{"t/1", "t%2F1", ""} {
		v, err := c.WriteTxn(ctx, f, "default", id, meta, 0)
		if err != nil || v == 0 {
			t.Fatalf("write %q: version %d, %v", id, v, err)
		}
		versions[id] = v
	}
	s, ok, err := c.LoadTxn(ctx, "default", "t/1")
	if err != nil || !ok || s.Version != versions["t/1"] || s.ID != "t/1" {
		t.Fatalf("load: %+v, %v, %v", s, ok, err)
	}
	want := *meta
	want.Partitions = []TP{data.TP(0), data.TP(3), other.TP(1)}
	slices.SortFunc(want.Partitions, cmpTP)
	if mustJSON(t, s.Meta) != mustJSON(t, want) {
		t.Fatalf("loaded %s, want %s", mustJSON(t, s.Meta), mustJSON(t, want))
	}
	if _, ok, err := c.LoadTxn(ctx, "default", "t"); ok || err != nil {
		t.Fatalf("an id never written: %v, %v", ok, err)
	}

	if v, err := c.WriteTxn(ctx, f, "default", "", nil, versions[""]); err != nil || v != 0 {
		t.Fatalf("delete: version %d, %v", v, err)
	}
	all, err := c.LoadTxns(ctx, "default", func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range all {
		got = append(got, s.ID)
		if s.Version != versions[s.ID] {
			t.Fatalf("%q loaded at version %d, written at %d", s.ID, s.Version, versions[s.ID])
		}
	}
	if want := []string{"t%2F1", "t/1"}; !slices.Equal(got, want) {
		t.Fatalf("ids %q, want %q", got, want)
	}
	some, err := c.LoadTxns(ctx, "default", func(id string) bool { return strings.HasPrefix(id, "t/") })
	if err != nil || len(some) != 1 || some[0].ID != "t/1" {
		t.Fatalf("filtered load: %+v, %v", some, err)
	}
	if none, err := c.LoadTxns(ctx, "other", func(string) bool { return true }); err != nil || len(none) != 0 {
		t.Fatalf("another namespace: %+v, %v", none, err)
	}
}

// A write on a version that is no longer the state's changes nothing (ErrTxnChanged), nor does a
// creation of an id that exists; invalid states, partitions, namespaces and fences are refused.
func TestWriteTxnVersioned(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	f, data := groupShard(t, c)
	v1, err := c.WriteTxn(ctx, f, "default", "t", txnMeta(TxnEmpty), 0)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := c.WriteTxn(ctx, f, "default", "t", txnMeta(TxnOngoing, data.TP(1)), v1)
	if err != nil {
		t.Fatal(err)
	}
	for name, version := range map[string]int64{"stale": v1, "creation": 0} {
		if _, err := c.WriteTxn(ctx, f, "default", "t", txnMeta(TxnPrepareAbort), version); !errors.Is(err, ErrTxnChanged) {
			t.Fatalf("%s write: %v, want ErrTxnChanged", name, err)
		}
	}
	if _, err := c.WriteTxn(ctx, f, "default", "t", nil, v1); !errors.Is(err, ErrTxnChanged) {
		t.Fatalf("stale deletion: %v, want ErrTxnChanged", err)
	}
	if s, _, err := c.LoadTxn(ctx, "default", "t"); err != nil || s.Version != v2 || s.Meta.State != TxnOngoing {
		t.Fatalf("state after refused writes: %+v, %v", s, err)
	}
	for name, tc := range map[string]struct {
		f    GroupFence
		ns   string
		meta *TxnMeta
	}{
		"no epoch":      {GroupFence{Shard: f.Shard}, "default", txnMeta(TxnEmpty)},
		"bad namespace": {f, "a/b", txnMeta(TxnEmpty)},
		"bad state":     {f, "default", txnMeta("Dead")},
		"bad partition": {f, "default", txnMeta(TxnOngoing, TP{Partition: 1})},
	} {
		if _, err := c.WriteTxn(ctx, tc.f, tc.ns, "t", tc.meta, v2); err == nil || errors.Is(err, ErrTxnChanged) {
			t.Fatalf("%s: %v, want refused", name, err)
		}
	}
}

// A coordinator whose lease was revoked cannot write its transactional ids, neither before a
// successor leads the shard nor after: ErrFenced, and nothing changes.
func TestWriteTxnFenced(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	shards := newTopic(t, admin, "__consumer_offsets", 1)
	a := newSession(t, te.client(t), "a", "127.0.0.1:1")
	eA, err := rev(a.Acquire(ctx, shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	fA := GroupFence{Shard: shards.TP(0), Epoch: eA}
	vA, err := a.c.WriteTxn(ctx, fA, "default", "t", txnMeta(TxnOngoing), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Etcd().Revoke(ctx, a.LeaseID()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.WriteTxn(ctx, fA, "default", "t", txnMeta(TxnPrepareCommit), vA); !errors.Is(err, ErrFenced) {
		t.Fatalf("write without a leader key: %v, want ErrFenced", err)
	}
	b := newSession(t, te.client(t), "b", "127.0.0.1:2")
	eB, err := rev(b.Acquire(ctx, shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	fB := GroupFence{Shard: shards.TP(0), Epoch: eB}
	loaded, ok, err := b.c.LoadTxn(ctx, "default", "t")
	if err != nil || !ok || loaded.Version != vA {
		t.Fatalf("successor's load: %+v, %v, %v", loaded, ok, err)
	}
	vB, err := b.c.WriteTxn(ctx, fB, "default", "t", txnMeta(TxnPrepareAbort), loaded.Version)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []*TxnMeta{txnMeta(TxnPrepareCommit), nil} {
		if _, err := a.c.WriteTxn(ctx, fA, "default", "t", m, vB); !errors.Is(err, ErrFenced) {
			t.Fatalf("zombie write %v: %v, want ErrFenced", m, err)
		}
	}
	if s, _, err := admin.LoadTxn(ctx, "default", "t"); err != nil || s.Meta.State != TxnPrepareAbort || s.Version != vB {
		t.Fatalf("state after the zombie's writes: %+v, %v", s, err)
	}
}

// A write whose first attempt applied but whose answer was lost is found applied by the next
// attempt (its token is there), and so is a deletion.
func TestWriteTxnAttemptAppliedAnswerLost(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	c := te.client(t)
	f, data := groupShard(t, c)
	attempts := loseFirstAnswers(c)
	v, err := c.WriteTxn(ctx, f, "default", "t", txnMeta(TxnOngoing, data.TP(2)), 0)
	if err != nil {
		t.Fatalf("write whose answer was lost: %v, want written", err)
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	if s, ok, err := admin.LoadTxn(ctx, "default", "t"); err != nil || !ok || s.Version != v || len(s.Meta.Partitions) != 1 {
		t.Fatalf("state after the write: %+v (version %d returned), %v", s, v, err)
	}
	if v, err := c.WriteTxn(ctx, f, "default", "t", nil, v); err != nil || v != 0 {
		t.Fatalf("deletion whose answer was lost: version %d, %v; want deleted", v, err)
	}
	if _, ok, err := admin.LoadTxn(ctx, "default", "t"); ok || err != nil {
		t.Fatalf("state after the deletion: %v, %v", ok, err)
	}
}

// Between two attempts of a write a newer state is written: the resend changes nothing and says the
// state changed; an attempt etcd applies only after the write was given up changes nothing either.
func TestWriteTxnAttemptKeepsNewerState(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	ctx := testCtx(t)
	admin := te.client(t)
	c := te.client(t, func(cfg *Config) {
		cfg.CommitAttemptTimeout = 100 * time.Millisecond
		cfg.CommitTimeout = 300 * time.Millisecond
	})
	f, _ := groupShard(t, c)
	v0, err := admin.WriteTxn(ctx, f, "default", "t", txnMeta(TxnOngoing), 0)
	if err != nil {
		t.Fatal(err)
	}
	var newer int64
	c.txnHook = func(actx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		if attempt == 1 {
			var err error
			if newer, err = admin.WriteTxn(ctx, f, "default", "t", txnMeta(TxnPrepareAbort), v0); err != nil {
				t.Error(err)
			}
			return nil, rpctypes.ErrTimeoutDueToLeaderFail
		}
		return do(actx)
	}
	if _, err := c.WriteTxn(ctx, f, "default", "t", txnMeta(TxnPrepareCommit), v0); !errors.Is(err, ErrTxnChanged) {
		t.Fatalf("resend over a newer state: %v, want ErrTxnChanged", err)
	}

	var held []func(context.Context) (*clientv3.TxnResponse, error)
	c.txnHook = func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		held = append(held, do)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	_, err = c.WriteTxn(ctx, f, "default", "t", txnMeta(TxnCompleteCommit), newer)
	if err == nil || errors.Is(err, ErrFenced) || errors.Is(err, ErrTxnChanged) || len(held) < 2 {
		t.Fatalf("write whose every attempt was held: %v after %d attempts, want an unknown outcome", err, len(held))
	}
	c.txnHook = nil
	s, _, err := c.LoadTxn(ctx, "default", "t")
	if err != nil || s.Version != newer {
		t.Fatalf("reload: %+v, %v", s, err)
	}
	last, err := c.WriteTxn(ctx, f, "default", "t", txnMeta(TxnCompleteAbort), s.Version)
	if err != nil {
		t.Fatal(err)
	}
	for i, do := range held {
		if resp, err := do(ctx); err != nil || resp.Succeeded {
			t.Fatalf("held attempt %d applied late: %v, %v; want its compare to fail", i+1, resp != nil && resp.Succeeded, err)
		}
	}
	if s, _, err := admin.LoadTxn(ctx, "default", "t"); err != nil || s.Meta.State != TxnCompleteAbort || s.Version != last {
		t.Fatalf("state after the late attempts: %+v, %v", s, err)
	}
}

// A state larger than one Txn may carry is refused before it is sent.
func TestWriteTxnTooLarge(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxRequestBytes = MinMaxRequestBytes })
	f, data := groupShard(t, c)
	m := txnMeta(TxnOngoing)
	for i := range 20000 {
		m.Groups = append(m.Groups, strings.Repeat("g", 10)+string(rune('a'+i%26)))
	}
	m.Partitions = []TP{data.TP(0)}
	if _, err := c.WriteTxn(ctx, f, "default", "t", m, 0); !errors.Is(err, ErrTxnTooLarge) {
		t.Fatalf("a state of %d groups: %v, want ErrTxnTooLarge", len(m.Groups), err)
	}
	if _, ok, err := c.LoadTxn(ctx, "default", "t"); ok || err != nil {
		t.Fatalf("written anyway: %v, %v", ok, err)
	}
}

// Stored values that are not a transaction state are refused as corrupt, not half-read.
func TestDecodeTxnRefuses(t *testing.T) {
	t.Parallel()
	for _, v := range []string{`{`, `{"state":"Dead"}`, `{"state":"Ongoing","parts":{"00000000000000000000000000000000":[1]}}`,
		`{"state":"Ongoing","parts":{"0102030405060708090a0b0c0d0e0f10":[-1]}}`, `{"state":"Ongoing","parts":{"xyz":[1]}}`} {
		if _, _, err := decodeTxn([]byte(v)); err == nil {
			t.Errorf("decoded %s", v)
		}
	}
}

// FuzzDecodeTxn: whatever etcd holds under txns/, decoding does not panic, and what it accepts
// encodes again to a value that decodes to the same state.
func FuzzDecodeTxn(f *testing.F) {
	good, _ := encodeTxn(txnMeta(TxnOngoing, TP{Topic: TopicID{1}, Partition: 2}), "tok")
	f.Add(good)
	f.Add([]byte(`{"state":"Empty"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, tok, err := decodeTxn(b)
		if err != nil {
			return
		}
		again, err := encodeTxn(&m, tok)
		if err != nil {
			t.Fatalf("re-encode of %+v: %v", m, err)
		}
		m2, tok2, err := decodeTxn(again)
		if err != nil || tok2 != tok || mustJSON(t, m2) != mustJSON(t, m) {
			t.Fatalf("round trip: %+v/%q became %+v/%q, %v", m, tok, m2, tok2, err)
		}
	})
}
