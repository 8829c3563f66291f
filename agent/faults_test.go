package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

var errPutInjected = errors.New("injected S3 PUT failure")

// A failed S3 PUT fails the produce with a retriable error and makes nothing visible; once the
// store heals, produce goes on at the next offset (invariants 1 and 3).
func TestPutFailureIsRetriableAndInvisible(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "putfail")
	wantOK(t, "produce", c.produceOne("putfail", 0, valueBatch(-1, -1, -1, nil, "before")).ErrorCode)

	tc.store.SetFault(segstore.OpPut, func(string) error { return errPutInjected })
	p := c.produceOne("putfail", 0, valueBatch(-1, -1, -1, nil, "lost-0", "lost-1"))
	wantCode(t, "produce with S3 failing", p.ErrorCode, kerr.KafkaStorageError)
	if !kerr.IsRetriable(kerr.ErrorForCode(p.ErrorCode)) {
		t.Fatalf("%s is not retriable", errName(p.ErrorCode))
	}
	// A franz-go producer that may not retry sees the same retriable error.
	noRetry := kgoClient(t, []kgo.Opt{kgo.RecordRetries(0), kgo.DisableIdempotentWrite()}, a)
	err := noRetry.ProduceSync(testCtx(t), &kgo.Record{Topic: "putfail", Value: []byte("lost-kgo")}).FirstErr()
	if !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("kgo produce with S3 failing: %v, want KAFKA_STORAGE_ERROR", err)
	}
	if hwm := c.highWatermark("putfail", 0); hwm != 1 {
		t.Fatalf("high watermark %d after failed writes, want 1", hwm)
	}

	tc.store.SetFault(segstore.OpPut, nil)
	p = c.produceOne("putfail", 0, valueBatch(-1, -1, -1, nil, "after-0", "after-1"))
	wantOK(t, "produce after heal", p.ErrorCode)
	if p.BaseOffset != 1 {
		t.Fatalf("base offset %d after heal, want 1", p.BaseOffset)
	}
	checkLog(t, a, "putfail", 0, []string{"before", "after-0", "after-1"})
}

// A failed etcd commit (not applied) fails the produce with a retriable error and makes nothing
// visible; the sequencer drops the partition, the leadership loop reloads it, and produce resumes
// at the next offset.
func TestCommitFailureIsRetriableAndInvisible(t *testing.T) {
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	c := ledTopicConn(t, a, "commitfail")
	tp := topicTP(t, a, "commitfail", 0)
	wantOK(t, "produce", c.produceOne("commitfail", 0, valueBatch(-1, -1, -1, nil, "before")).ErrorCode)
	before := a.lead.leaders.get(tp)

	var failing atomic.Bool
	failing.Store(true)
	h.setCommit(func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		if failing.Load() {
			return failAll(commits, errInjected)
		}
		return next()
	})
	p := c.produceOne("commitfail", 0, valueBatch(-1, -1, -1, nil, "lost"))
	// The agent cannot tell a failed etcd commit from one that applied: "maybe written".
	wantCode(t, "produce with etcd failing", p.ErrorCode, kerr.RequestTimedOut)
	if hwm := c.highWatermark("commitfail", 0); hwm != 1 {
		t.Fatalf("high watermark %d after a failed commit, want 1", hwm)
	}
	waitFor(t, "the partition's leadership to be reloaded", func() bool {
		pl := a.lead.leaders.get(tp)
		return pl != nil && pl != before
	})

	failing.Store(false)
	p = c.produceOne("commitfail", 0, valueBatch(-1, -1, -1, nil, "after"))
	wantOK(t, "produce after heal", p.ErrorCode)
	if p.BaseOffset != 1 {
		t.Fatalf("base offset %d after heal, want 1", p.BaseOffset)
	}
	checkLog(t, a, "commitfail", 0, []string{"before", "after"})
}

// applyThenFail is a commit hook that lets the next commit reach etcd but reports it failed (its
// outcome unknown to the agent, as after a timeout), once. fired is set when it did.
func applyThenFail(fired *atomic.Bool) func(context.Context, []coord.Commit, func() []error) []error {
	return func(ctx context.Context, commits []coord.Commit, next func() []error) []error {
		errs := next()
		if slices.ContainsFunc(errs, func(e error) bool { return e == nil }) && fired.CompareAndSwap(false, true) {
			for i, err := range errs {
				if err == nil {
					errs[i] = errInjected
				}
			}
		}
		return errs
	}
}

// A commit that was applied although the agent saw it fail: the producer's retry of the same
// batch is answered as a duplicate with its original offset, not written twice.
func TestCommitOutcomeUnknownRetryIsDuplicate(t *testing.T) {
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	c := ledTopicConn(t, a, "unknown")
	tp := topicTP(t, a, "unknown", 0)
	pid, epoch := c.initProducerID()
	wantOK(t, "produce", c.produceOne("unknown", 0, valueBatch(-1, -1, -1, nil, "plain")).ErrorCode)
	before := a.lead.leaders.get(tp)

	var fired atomic.Bool
	h.setCommit(applyThenFail(&fired))
	batch := valueBatch(pid, epoch, 0, nil, "idem-0", "idem-1")
	wantCode(t, "produce whose commit outcome is unknown", c.produceOne("unknown", 0, batch).ErrorCode, kerr.RequestTimedOut)
	if !fired.Load() {
		t.Fatal("the commit fault never fired")
	}
	waitFor(t, "the partition's leadership to be reloaded", func() bool {
		pl := a.lead.leaders.get(tp)
		return pl != nil && pl != before
	})
	p := c.produceOne("unknown", 0, batch)
	wantOK(t, "retried produce", p.ErrorCode)
	if p.BaseOffset != 1 {
		t.Fatalf("retry answered at offset %d, want the original 1", p.BaseOffset)
	}
	p = c.produceOne("unknown", 0, valueBatch(pid, epoch, 2, nil, "idem-2"))
	wantOK(t, "next produce", p.ErrorCode)
	if p.BaseOffset != 3 {
		t.Fatalf("next batch at offset %d, want 3", p.BaseOffset)
	}
	checkLog(t, a, "unknown", 0, []string{"plain", "idem-0", "idem-1", "idem-2"})
}

// The same with franz-go's idempotent producer doing the retrying.
func TestCommitOutcomeUnknownKgoNoDuplicates(t *testing.T) {
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	cl := kgoClient(t, []kgo.Opt{kgo.RetryBackoffFn(func(int) time.Duration { return 5 * time.Millisecond })}, a)
	createLedTopic(t, cl, a, "unknown-kgo", 1, nil)

	var fired atomic.Bool
	h.setCommit(applyThenFail(&fired))
	produced := produceN(t, cl, "unknown-kgo", "v", 50)
	if !fired.Load() {
		t.Fatal("the commit fault never fired")
	}
	consumed := consumeAll(t, []*Agent{a}, "unknown-kgo", len(produced))
	checkDense(t, produced, consumed)
	acked := map[string]int64{}
	for _, r := range produced {
		acked[string(r.Value)] = r.Offset
	}
	for _, r := range consumed {
		if acked[string(r.Value)] != r.Offset {
			t.Fatalf("%q acknowledged at offset %d, stored at %d", r.Value, acked[string(r.Value)], r.Offset)
		}
	}
	if hwm := dialRaw(t, a).highWatermark("unknown-kgo", 0); hwm != int64(len(produced)) {
		t.Fatalf("high watermark %d, want %d", hwm, len(produced))
	}
}

// Idempotent producers: a retried batch is answered with its original offset and stored once; a
// sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER and stores nothing.
func TestIdempotentDuplicateAndGap(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "idem")
	pid, epoch := c.initProducerID()
	wantOK(t, "produce", c.produceOne("idem", 0, valueBatch(-1, -1, -1, nil, "plain")).ErrorCode)

	b0 := valueBatch(pid, epoch, 0, nil, "x-0", "x-1", "x-2")
	for i := range 2 {
		p := c.produceOne("idem", 0, b0)
		wantOK(t, "idempotent produce", p.ErrorCode)
		if p.BaseOffset != 1 {
			t.Fatalf("send %d: base offset %d, want 1", i, p.BaseOffset)
		}
	}
	gap := c.produceOne("idem", 0, valueBatch(pid, epoch, 5, nil, "gap"))
	wantCode(t, "sequence gap", gap.ErrorCode, kerr.OutOfOrderSequenceNumber)

	// Pipelined on one connection, both copies of one batch are likely in one flush.
	b1 := valueBatch(pid, epoch, 3, nil, "x-3")
	req := produceReq("idem", -1, map[int32][]byte{0: b1})
	first, second := c.send(req, produceVersion), c.send(req, produceVersion)
	p1, p2 := c.recvProduce(first), c.recvProduce(second)
	wantOK(t, "pipelined produce", p1.ErrorCode)
	wantOK(t, "pipelined duplicate", p2.ErrorCode)
	if p1.BaseOffset != 4 || p2.BaseOffset != 4 {
		t.Fatalf("pipelined copies at offsets %d and %d, want 4 and 4", p1.BaseOffset, p2.BaseOffset)
	}
	// An older batch, still among the last five, is a duplicate too.
	if p := c.produceOne("idem", 0, b0); p.ErrorCode != 0 || p.BaseOffset != 1 {
		t.Fatalf("old duplicate: %s at %d, want offset 1", errName(p.ErrorCode), p.BaseOffset)
	}
	checkLog(t, a, "idem", 0, []string{"plain", "x-0", "x-1", "x-2", "x-3"})
}

// A new idempotent producer pipelines two batches; the first one's S3 PUT fails, the second's
// succeeds. The second must not be appended ahead of the first (it would be reordered, and the
// first's retry refused): it is OUT_OF_ORDER_SEQUENCE_NUMBER until the first is in.
func TestIdempotentNotReorderedAfterFailedWrite(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "order")
	pid, epoch := c.initProducerID()

	var puts atomic.Int32
	entered1, entered2, release := make(chan struct{}), make(chan struct{}), newGate(t)
	tc.store.SetFault(segstore.OpPut, func(string) error {
		switch puts.Add(1) {
		case 1:
			close(entered1)
			<-release.C()
			return errPutInjected
		case 2:
			close(entered2)
		}
		return nil
	})
	b0 := valueBatch(pid, epoch, 0, nil, "a-0", "a-1")
	b1 := valueBatch(pid, epoch, 2, nil, "a-2", "a-3")
	corr0 := c.send(produceReq("order", -1, map[int32][]byte{0: b0}), produceVersion)
	waitChan(t, "the first flush's PUT", entered1)
	corr1 := c.send(produceReq("order", -1, map[int32][]byte{0: b1}), produceVersion)
	waitChan(t, "the second flush's PUT", entered2)
	release.open()
	wantCode(t, "first batch (PUT failed)", c.recvProduce(corr0).ErrorCode, kerr.KafkaStorageError)
	p1 := c.recvProduce(corr1)
	wantCode(t, "second batch after the first failed", p1.ErrorCode, kerr.OutOfOrderSequenceNumber)
	if hwm := c.highWatermark("order", 0); hwm != 0 {
		t.Fatalf("high watermark %d, want 0", hwm)
	}

	tc.store.SetFault(segstore.OpPut, nil)
	if p := c.produceOne("order", 0, b0); p.ErrorCode != 0 || p.BaseOffset != 0 {
		t.Fatalf("retry of the first batch: %s at %d, want offset 0", errName(p.ErrorCode), p.BaseOffset)
	}
	if p := c.produceOne("order", 0, b1); p.ErrorCode != 0 || p.BaseOffset != 2 {
		t.Fatalf("retry of the second batch: %s at %d, want offset 2", errName(p.ErrorCode), p.BaseOffset)
	}
	checkLog(t, a, "order", 0, []string{"a-0", "a-1", "a-2", "a-3"})
}

// corruptingStore flips a byte of every ranged read while on, as a bit rot in S3 would.
type corruptingStore struct {
	objectStore
	on atomic.Bool
}

func (s *corruptingStore) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	b, err := s.objectStore.GetRange(ctx, key, off, length)
	if err == nil && s.on.Load() && len(b) > 0 {
		b = slices.Clone(b)
		b[len(b)/2] ^= 0x10
	}
	return b, err
}

// A stored extent that fails its CRC is never served: the fetch gets KAFKA_STORAGE_ERROR, the
// corruption is counted, and nothing corrupt is cached.
func TestCorruptStoredExtentIsNotServed(t *testing.T) {
	tc := newTestCluster(t)
	store := &corruptingStore{objectStore: tc.store}
	a := startAgent(t, newAgentVia(t, tc, "a1", sharedEtcd[0], store))
	c := ledTopicConn(t, a, "rot")
	wantOK(t, "produce", c.produceOne("rot", 0, valueBatch(-1, -1, -1, nil, values("r", 20)...)).ErrorCode)

	a.reader.Purge() // a1 cached what it wrote (write-through): read the stored copy
	store.on.Store(true)
	for range 2 { // the second read must not be served from a cache either
		sp := c.fetchOne("rot", 0, 0, 1<<20)
		wantCode(t, "fetch of a corrupt extent", sp.ErrorCode, kerr.KafkaStorageError)
		if len(sp.RecordBatches) != 0 {
			t.Fatalf("%d bytes served from a corrupt extent", len(sp.RecordBatches))
		}
	}
	if n := metricValue(t, a, "streamhouse_fetch_corrupt_total"); n < 1 {
		t.Fatalf("streamhouse_fetch_corrupt_total = %v, want ≥ 1", n)
	}
	lo := c.listOffset("rot", 0, 1005) // by timestamp: reads the records too
	wantCode(t, "list offsets by timestamp over a corrupt extent", lo.ErrorCode, kerr.KafkaStorageError)

	store.on.Store(false)
	checkLog(t, a, "rot", 0, values("r", 20))
}

// Backpressure: past MaxBufferedBytes a connection's produce waits inside the read loop, so the
// agent reads no further requests from it and holds no more bytes; it resumes when space frees up.
func TestBackpressureBoundsBufferedBytes(t *testing.T) {
	tc := newTestCluster(t)
	const limit = 4096
	a := tc.agent("a1", func(cfg *Config) { cfg.FlushBytes, cfg.MaxBufferedBytes = limit, limit })
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "bp", 1, nil)

	var puts atomic.Int32
	var maxBuffered atomic.Int64
	entered, release := make(chan struct{}), newGate(t)
	tc.store.SetFault(segstore.OpPut, func(string) error {
		a.flusher.mu.Lock()
		maxBuffered.Store(max(maxBuffered.Load(), a.flusher.buffered))
		a.flusher.mu.Unlock()
		if puts.Add(1) == 1 {
			close(entered)
		}
		<-release.C()
		return nil
	})
	big := func(prefix string) []byte { return valueBatch(-1, -1, -1, nil, prefix+string(make([]byte, 3000))) }
	c := dialRaw(t, a)
	var corrs []int32
	corrs = append(corrs, c.send(produceReq("bp", -1, map[int32][]byte{0: big("p0")}), produceVersion))
	waitChan(t, "the first PUT", entered)
	for i := 1; i < 3; i++ {
		corrs = append(corrs, c.send(produceReq("bp", -1, map[int32][]byte{0: big(fmt.Sprint("p", i))}), produceVersion))
	}
	// The connection's reader is parked in submit: it reads nothing more until space frees up.
	waitFor(t, "the connection's reader to wait for buffer space", func() bool {
		return goroutinesIn("(*flusher).submit", "(*Agent).serveConn") == 1
	})
	if got := metricValue(t, a, "streamhouse_produce_buffered_bytes"); got > limit {
		t.Fatalf("buffered bytes %v above the limit %d", got, limit)
	}
	// Another connection is not held up by it.
	other := dialRaw(t, a)
	other.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)

	release.open()
	var next int64
	for i, corr := range corrs {
		p := c.recvProduce(corr)
		wantOK(t, "produce after release", p.ErrorCode)
		if p.BaseOffset != next {
			t.Fatalf("produce %d at offset %d, want %d", i, p.BaseOffset, next)
		}
		next++
	}
	if n := puts.Load(); n != 3 {
		t.Fatalf("%d PUTs, want 3 (one flush per batch at this limit)", n)
	}
	if m := maxBuffered.Load(); m > limit {
		t.Fatalf("%d bytes buffered at a PUT, above the limit %d", m, limit)
	}
}

// A graceful shutdown acknowledges the produce it holds and resigns every partition before it
// returns; produce arriving meanwhile is refused with a retriable error.
func TestShutdownFlushesAndResigns(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "bye", 2, nil)
	cl.Close()

	entered, release := holdPuts(t, tc.store)
	c := dialRaw(t, a)
	corr := c.send(produceReq("bye", -1, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "held")}), produceVersion)
	waitChan(t, "the PUT", entered)

	shut := startShutdown(t, a)
	late := dialRaw(t, a).produceOne("bye", 1, valueBatch(-1, -1, -1, nil, "late"))
	wantCode(t, "produce during shutdown", late.ErrorCode, kerr.NotLeaderForPartition)
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned (%v) with produce still held", err)
	default:
	}

	release.open()
	p := c.recvProduce(corr)
	wantOK(t, "produce held across shutdown", p.ErrorCode)
	if err := waitChan(t, "shutdown", shut); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	etcd := tc.client().Etcd()
	for _, dir := range []string{"leaders/", "agents/"} {
		resp, err := etcd.Get(testCtx(t), tc.prefix+dir, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) != 0 {
			t.Fatalf("%d keys left under %s after shutdown", len(resp.Kvs), dir)
		}
	}

	b := tc.agent("a1")
	checkLog(t, b, "bye", 0, []string{"held"})
}

// A produce whose answer waits behind a long-polling fetch on the same connection (answers go out in
// request order) is still acknowledged by a graceful shutdown that committed it: the shutdown closes
// the connections only once the answers of the produce it committed are written.
func TestShutdownAcksProduceQueuedBehindLongPoll(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "bye-poll", 2, nil)
	cl.Close()

	entered, release := holdPuts(t, tc.store)
	c := dialRaw(t, a)
	fetch := c.send(fetchReq("bye-poll", 1000, 1, 1<<20, fetchPart{1, 0, 1 << 20}), fetchVersion)
	waitFor(t, "the fetch to wait at the log end", func() bool { return goroutinesIn("(*Agent).handleFetch", "waitAny") == 1 })
	produce := c.send(produceReq("bye-poll", -1, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "held")}), produceVersion)
	waitChan(t, "the PUT", entered)

	shut := startShutdown(t, a)
	release.open()

	fr := kmsg.NewPtrFetchResponse()
	fr.Version = fetchVersion
	if got := c.recv(fr); got != fetch {
		t.Fatalf("first answer has correlation id %d, want the fetch's %d", got, fetch)
	}
	p := c.recvProduce(produce)
	wantOK(t, "produce held across shutdown", p.ErrorCode)
	if err := waitChan(t, "shutdown", shut); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	checkLog(t, tc.agent("a1"), "bye-poll", 0, []string{"held"})
}
