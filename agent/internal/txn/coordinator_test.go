package txn

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

var (
	topicA = coord.TopicID{0xa}
	shard0 = coord.TP{Topic: coord.TopicID{0xc}, Partition: 0}
)

// fakeStore is etcd as WriteTxn sees it: shard epochs fence, the key's version is compared.
type fakeStore struct {
	mu      sync.Mutex
	epochs  map[coord.TP]int64
	txns    map[string]coord.TxnSnapshot
	rev     int64
	nextPID int64
	writes  chan coord.TxnSnapshot // every applied write (a deletion with an empty ID)
}

func newFakeStore() *fakeStore {
	return &fakeStore{epochs: map[coord.TP]int64{shard0: 7}, txns: map[string]coord.TxnSnapshot{}, rev: 100, nextPID: 1000,
		writes: make(chan coord.TxnSnapshot, 1000)}
}

func (s *fakeStore) LoadTxns(_ context.Context, _ string, keep func(string) bool) ([]coord.TxnSnapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []coord.TxnSnapshot
	for id, t := range s.txns {
		if keep(id) {
			out = append(out, t)
		}
	}
	return out, nil
}

func (s *fakeStore) WriteTxn(_ context.Context, f coord.GroupFence, _, id string, meta *coord.TxnMeta, version int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epochs[f.Shard] != f.Epoch {
		return 0, coord.ErrFenced
	}
	if s.txns[id].Version != version {
		return 0, coord.ErrTxnChanged
	}
	s.rev++
	if meta == nil {
		delete(s.txns, id)
		s.writes <- coord.TxnSnapshot{}
		return 0, nil
	}
	snap := coord.TxnSnapshot{ID: id, Meta: *meta, Version: s.rev}
	s.txns[id] = snap
	s.writes <- snap
	return s.rev, nil
}

func (s *fakeStore) AllocateProducerID(context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextPID++
	return s.nextPID - 1, nil
}

func (s *fakeStore) get(id string) (coord.TxnSnapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.txns[id]
	return t, ok
}

// awaitState waits for a write that puts id in state.
func (s *fakeStore) awaitState(t *testing.T, id, state string) coord.TxnSnapshot {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case w := <-s.writes:
			if w.ID == id && w.Meta.State == state {
				return w
			}
		case <-timeout:
			t.Fatalf("%q never written %s", id, state)
		}
	}
}

// fakeMarkers records the markers asked for, failing while fail is set.
type fakeMarkers struct {
	fail  atomic.Bool
	calls chan Marker
}

func (m *fakeMarkers) WriteMarkers(_ context.Context, mk Marker) error {
	select {
	case m.calls <- mk:
	default:
	}
	if m.fail.Load() {
		return errors.New("partition leader unreachable")
	}
	return nil
}

type harness struct {
	c       *Coordinator
	store   *fakeStore
	markers *fakeMarkers
	now     atomic.Int64 // unix ms
	leading atomic.Int64 // the epoch this agent leads shard0 at; 0: not
}

// newHarness runs a coordinator over the fakes; the periodic check is left to the test (check).
func newHarness(t *testing.T, store *fakeStore, opts ...func(*Config)) *harness {
	t.Helper()
	h := &harness{store: store, markers: &fakeMarkers{calls: make(chan Marker, 1000)}}
	h.now.Store(1_000_000)
	h.leading.Store(store.epochs[shard0])
	cfg := Config{NS: "default", Store: store, Markers: h.markers,
		ShardOf:    func(string) (coord.TP, bool) { return shard0, true },
		Leading:    func(tp coord.TP) (int64, bool) { e := h.leading.Load(); return e, tp == shard0 && e != 0 },
		Shards:     func() []coord.TP { return []coord.TP{shard0} },
		Now:        func() time.Time { return time.UnixMilli(h.now.Load()) },
		CheckEvery: time.Hour, MarkerBackoff: time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitRunning(t, c)
	return h
}

// waitRunning waits until Run serves.
func waitRunning(t *testing.T, c *Coordinator) {
	t.Helper()
	select {
	case <-c.started:
	case <-time.After(10 * time.Second):
		t.Fatal("Run never started")
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

func (h *harness) init(t *testing.T, id string, given ProducerIDAndEpoch) ProducerIDAndEpoch {
	t.Helper()
	p, err := h.c.InitProducerID(context.Background(), id, 60000, given)
	if err != nil {
		t.Fatalf("InitProducerID(%q, %+v): %v", id, given, err)
	}
	return p
}

// A new id gets a producer at epoch 0; each InitProducerID bumps the epoch and fences the producer
// before it, whose requests then answer PRODUCER_FENCED; KIP-360's named producer must be the current
// one; a timeout over the maximum is refused.
func TestInitProducerIDFences(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newFakeStore())
	ctx := context.Background()
	first := h.init(t, "tx", NoProducer)
	if first != (ProducerIDAndEpoch{1000, 0}) {
		t.Fatalf("first producer %+v", first)
	}
	second := h.init(t, "tx", NoProducer)
	if second != (ProducerIDAndEpoch{1000, 1}) {
		t.Fatalf("second producer %+v, want the same id at epoch 1", second)
	}
	wantErr(t, "the older producer's AddPartitions", h.c.AddPartitions(ctx, "tx", first, []coord.TP{{Topic: topicA}}), kerr.ProducerFenced)
	wantErr(t, "the older producer's EndTxn", h.c.EndTxn(ctx, "tx", first, true), kerr.ProducerFenced)
	// KIP-360: naming the producer before the last bump is a retry of that bump (its answer lost):
	// the current producer again; naming the current one bumps; naming an older one is fenced.
	if retried := h.init(t, "tx", first); retried != second {
		t.Fatalf("KIP-360 init naming the producer before the bump: %+v, want %+v", retried, second)
	}
	_, err := h.c.InitProducerID(ctx, "tx", 60000, ProducerIDAndEpoch{5, 1})
	wantErr(t, "KIP-360 init naming another producer id", err, kerr.InvalidProducerIDMapping)
	if third := h.init(t, "tx", second); third != (ProducerIDAndEpoch{1000, 2}) {
		t.Fatalf("KIP-360 init of the current producer: %+v, want epoch 2", third)
	}
	_, err = h.c.InitProducerID(ctx, "tx", 60000, first)
	wantErr(t, "KIP-360 init naming a producer two bumps old", err, kerr.ProducerFenced)
	_, err = h.c.InitProducerID(ctx, "tx", int32((16 * time.Minute).Milliseconds()), NoProducer)
	wantErr(t, "a timeout over the maximum", err, kerr.InvalidTransactionTimeout)
	wantErr(t, "AddPartitions of an id never initialised", h.c.AddPartitions(ctx, "other", first, nil), kerr.InvalidProducerIDMapping)
	if other := h.init(t, "other", NoProducer); other.ID == 1000 {
		t.Fatalf("another id shares producer id %d", other.ID)
	}
}

// Once the epoch runs out, InitProducerID moves the id to a new producer id at epoch 0; a retry of
// that call (naming the producer before it) gets the same answer.
func TestInitProducerIDEpochExhausted(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	store.txns["tx"] = coord.TxnSnapshot{ID: "tx", Version: 50, Meta: coord.TxnMeta{ProducerID: 7, Epoch: math.MaxInt16 - 1,
		PrevProducerID: 7, PrevEpoch: math.MaxInt16 - 2, TimeoutMs: 1000, State: coord.TxnCompleteCommit}}
	h := newHarness(t, store)
	old := ProducerIDAndEpoch{7, math.MaxInt16 - 1}
	p := h.init(t, "tx", old)
	if p.ID == 7 || p.Epoch != 0 {
		t.Fatalf("after the last epoch: %+v, want a new producer id at epoch 0", p)
	}
	if again := h.init(t, "tx", old); again != p {
		t.Fatalf("retried init: %+v, want %+v again", again, p)
	}
}

// A committed transaction: partitions and a group added (each addition written before it is
// answered), EndTxn answered once the decision is written, markers asked for with the decision's
// version as their guard, then CompleteCommit; while the markers are pending the producer's next
// calls wait (CONCURRENT_TRANSACTIONS); retries of EndTxn are answered by what was decided.
func TestCommitWritesMarkersThenCompletes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newFakeStore())
	ctx := context.Background()
	p := h.init(t, "tx", NoProducer)
	tps := []coord.TP{{Topic: topicA, Partition: 0}, {Topic: topicA, Partition: 1}}
	if err := h.c.AddPartitions(ctx, "tx", p, tps); err != nil {
		t.Fatal(err)
	}
	if err := h.c.AddPartitions(ctx, "tx", p, tps[:1]); err != nil {
		t.Fatal(err)
	}
	if err := h.c.AddOffsets(ctx, "tx", p, "g"); err != nil {
		t.Fatal(err)
	}
	if s, _ := h.store.get("tx"); s.Meta.State != coord.TxnOngoing || len(s.Meta.Partitions) != 2 || len(s.Meta.Groups) != 1 || s.Meta.StartMs == 0 {
		t.Fatalf("stored before EndTxn: %+v", s.Meta)
	}
	wantErr(t, "EndTxn of a wrong producer id", h.c.EndTxn(ctx, "tx", ProducerIDAndEpoch{p.ID + 1, p.Epoch}, true), kerr.InvalidProducerIDMapping)

	h.markers.fail.Store(true)
	if err := h.c.EndTxn(ctx, "tx", p, true); err != nil {
		t.Fatal(err)
	}
	prepared, _ := h.store.get("tx")
	if prepared.Meta.State != coord.TxnPrepareCommit {
		t.Fatalf("stored when EndTxn answered: %s", prepared.Meta.State)
	}
	mk := <-h.markers.calls
	if !mk.Commit || mk.ProducerID != p.ID || mk.Epoch != p.Epoch || len(mk.Partitions) != 2 || len(mk.Groups) != 1 ||
		mk.Guard != (coord.TxnGuard{NS: "default", ID: "tx", Version: prepared.Version}) {
		t.Fatalf("marker %+v, want a commit of the transaction guarded by version %d", mk, prepared.Version)
	}
	wantErr(t, "AddPartitions while the markers are pending", h.c.AddPartitions(ctx, "tx", p, tps), kerr.ConcurrentTransactions)
	wantErr(t, "EndTxn retried while the markers are pending", h.c.EndTxn(ctx, "tx", p, true), kerr.ConcurrentTransactions)
	wantErr(t, "the other decision while the markers are pending", h.c.EndTxn(ctx, "tx", p, false), kerr.InvalidTxnState)
	_, err := h.c.InitProducerID(ctx, "tx", 60000, NoProducer)
	wantErr(t, "InitProducerID while the markers are pending", err, kerr.ConcurrentTransactions)

	h.markers.fail.Store(false)
	h.store.awaitState(t, "tx", coord.TxnCompleteCommit)
	if err := h.c.EndTxn(ctx, "tx", p, true); err != nil {
		t.Fatalf("EndTxn retried after completion: %v", err)
	}
	wantErr(t, "abort after the commit completed", h.c.EndTxn(ctx, "tx", p, false), kerr.InvalidTxnState)
	if err := h.c.AddPartitions(ctx, "tx", p, tps[1:]); err != nil {
		t.Fatalf("the next transaction: %v", err)
	}
	if s, _ := h.store.get("tx"); s.Meta.State != coord.TxnOngoing || len(s.Meta.Partitions) != 1 || len(s.Meta.Groups) != 0 {
		t.Fatalf("the next transaction starts afresh: %+v", s.Meta)
	}
}

// InitProducerID over an ongoing transaction aborts it at the next epoch (its markers fence the
// producer that was writing it) and answers CONCURRENT_TRANSACTIONS until the abort completes; then
// it bumps again.
func TestInitProducerIDAbortsOngoing(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newFakeStore())
	ctx := context.Background()
	p := h.init(t, "tx", NoProducer)
	if err := h.c.AddPartitions(ctx, "tx", p, []coord.TP{{Topic: topicA}}); err != nil {
		t.Fatal(err)
	}
	h.markers.fail.Store(true)
	_, err := h.c.InitProducerID(ctx, "tx", 60000, NoProducer)
	wantErr(t, "InitProducerID over an ongoing transaction", err, kerr.ConcurrentTransactions)
	mk := <-h.markers.calls
	if mk.Commit || mk.Epoch != p.Epoch+1 || mk.ProducerID != p.ID {
		t.Fatalf("marker %+v, want an abort at epoch %d", mk, p.Epoch+1)
	}
	h.markers.fail.Store(false)
	h.store.awaitState(t, "tx", coord.TxnCompleteAbort)
	if next := h.init(t, "tx", NoProducer); next != (ProducerIDAndEpoch{p.ID, p.Epoch + 2}) {
		t.Fatalf("after the abort: %+v, want epoch %d", next, p.Epoch+2)
	}
}

// A transaction past its timeout is aborted at the next epoch by the periodic check: the producer
// that let it time out is fenced. One within its timeout is left alone.
func TestTimedOutTransactionAborted(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newFakeStore())
	ctx := context.Background()
	p, err := h.c.InitProducerID(ctx, "tx", 1000, NoProducer)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.c.AddPartitions(ctx, "tx", p, []coord.TP{{Topic: topicA}}); err != nil {
		t.Fatal(err)
	}
	h.now.Add(1000)
	h.c.check(ctx)
	if s, _ := h.store.get("tx"); s.Meta.State != coord.TxnOngoing {
		t.Fatalf("at its timeout: %s, want still Ongoing", s.Meta.State)
	}
	h.now.Add(1)
	h.c.check(ctx)
	h.store.awaitState(t, "tx", coord.TxnCompleteAbort)
	wantErr(t, "the timed out producer's EndTxn", h.c.EndTxn(ctx, "tx", p, true), kerr.ProducerFenced)
	// Its KIP-360 recovery names the epoch before the abort's bump: it gets the bumped one.
	if next := h.init(t, "tx", p); next != (ProducerIDAndEpoch{p.ID, p.Epoch + 1}) {
		t.Fatalf("recovery of the timed out producer: %+v", next)
	}
}

// A coordinator that takes a shard over finds a decided transaction and completes it: markers, then
// Complete. One whose shard is fenced answers NOT_COORDINATOR and forgets the shard.
func TestTakeoverCompletesAndFencing(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	tps := []coord.TP{{Topic: topicA, Partition: 3}}
	store.txns["tx"] = coord.TxnSnapshot{ID: "tx", Version: 60, Meta: coord.TxnMeta{ProducerID: 9, Epoch: 4, PrevProducerID: -1,
		PrevEpoch: -1, TimeoutMs: 1000, State: coord.TxnPrepareAbort, Partitions: tps, StartMs: 1, UpdateMs: 2}}
	h := newHarness(t, store)
	ctx := context.Background()
	h.markers.fail.Store(true)
	_, err := h.c.InitProducerID(ctx, "tx", 60000, NoProducer) // loads the shard
	wantErr(t, "init while the predecessor's abort completes", err, kerr.ConcurrentTransactions)
	h.markers.fail.Store(false)
	h.store.awaitState(t, "tx", coord.TxnCompleteAbort)
	mk := <-h.markers.calls
	if mk.Commit || mk.ProducerID != 9 || mk.Epoch != 4 || mk.Guard.Version != 60 || len(mk.Partitions) != 1 {
		t.Fatalf("resumed marker %+v", mk)
	}

	store.mu.Lock()
	store.epochs[shard0] = 8 // another agent took the shard over
	store.mu.Unlock()
	_, err = h.c.InitProducerID(ctx, "tx", 60000, NoProducer)
	wantErr(t, "init on a fenced shard", err, kerr.NotCoordinator)
	h.c.mu.Lock()
	n := len(h.c.shards)
	h.c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d shards kept after a fenced write", n)
	}
	h.leading.Store(0)
	_, err = h.c.InitProducerID(ctx, "tx", 60000, NoProducer)
	wantErr(t, "init on a shard not led", err, kerr.NotCoordinator)
}

// An id idle past its expiry is deleted; one with an ongoing transaction is not (the same check
// aborts it, past its timeout).
func TestIdleIDExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, newFakeStore())
	ctx := context.Background()
	h.init(t, "idle", NoProducer)
	busy := h.init(t, "busy", NoProducer)
	if err := h.c.AddPartitions(ctx, "busy", busy, []coord.TP{{Topic: topicA}}); err != nil {
		t.Fatal(err)
	}
	h.now.Add((DefaultIDExpiration + time.Hour).Milliseconds())
	h.c.check(ctx)
	if _, ok := h.store.get("idle"); ok {
		t.Fatal("idle id kept past its expiry")
	}
	if s, ok := h.store.get("busy"); !ok || s.Meta.State == coord.TxnEmpty {
		t.Fatalf("id with a transaction: %+v, %v", s, ok)
	}
	if p := h.init(t, "idle", NoProducer); p.Epoch != 0 {
		t.Fatalf("an expired id starts again: %+v", p)
	}
}

// List reports every id of the shards this agent leads, loading them, with its producer and state;
// nothing once the agent leads none.
func TestListTransactions(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	store.txns["loaded"] = coord.TxnSnapshot{ID: "loaded", Version: 5, Meta: coord.TxnMeta{ProducerID: 5, State: coord.TxnCompleteAbort, StartMs: 3}}
	h := newHarness(t, store)
	ctx := context.Background()
	p := h.init(t, "b", NoProducer)
	if err := h.c.AddPartitions(ctx, "b", p, []coord.TP{{Topic: topicA}}); err != nil {
		t.Fatal(err)
	}
	h.init(t, "a", NoProducer)
	got, err := h.c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []Listed{{ID: "a", ProducerID: p.ID + 1, State: coord.TxnEmpty}, {ID: "b", ProducerID: p.ID, State: coord.TxnOngoing, StartMs: h.now.Load()},
		{ID: "loaded", ProducerID: 5, State: coord.TxnCompleteAbort, StartMs: 3}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("listed %+v, want %+v", got, want)
	}
	h.leading.Store(0)
	if got, err := h.c.List(ctx); err != nil || len(got) != 0 {
		t.Fatalf("listed without leading: %+v, %v", got, err)
	}
}

// A coordinator loads the shards it leads by itself (its periodic check), so that a predecessor's
// decided transaction is completed and an ongoing one timed out even if no client ever asks about
// their ids again (the producers died).
func TestTakeoverWithoutRequests(t *testing.T) {
	t.Parallel()
	store := newFakeStore()
	tps := []coord.TP{{Topic: topicA, Partition: 3}}
	store.txns["decided"] = coord.TxnSnapshot{ID: "decided", Version: 60, Meta: coord.TxnMeta{ProducerID: 9, Epoch: 4, PrevProducerID: -1,
		PrevEpoch: -1, TimeoutMs: 1000, State: coord.TxnPrepareCommit, Partitions: tps, StartMs: 1, UpdateMs: 2}}
	h := newHarness(t, store)
	start := h.now.Load()
	store.txns["ongoing"] = coord.TxnSnapshot{ID: "ongoing", Version: 61, Meta: coord.TxnMeta{ProducerID: 10, Epoch: 0, PrevProducerID: -1,
		PrevEpoch: -1, TimeoutMs: 1000, State: coord.TxnOngoing, Partitions: tps, StartMs: start, UpdateMs: start}}
	ctx := context.Background()
	h.c.check(ctx) // loads the shard: no request came
	h.store.awaitState(t, "decided", coord.TxnCompleteCommit)
	h.now.Add(1001)
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.c.check(ctx)
		if s, _ := h.store.get("ongoing"); s.Meta.State == coord.TxnCompleteAbort {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ongoing transaction past its timeout was never aborted")
		}
		time.Sleep(time.Millisecond) // the shard's load runs on its own goroutine
	}
}
