package coord

import (
	"context"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// etcdWithMaxTxnOps starts an etcd of its own for the test, allowing maxTxnOps operations per Txn
// (the shared one allows etcd's default, 128) and etcd's default request size, 1.5 MiB.
func etcdWithMaxTxnOps(t *testing.T, maxTxnOps int) *testEtcd {
	t.Helper()
	return etcdWithLimits(t, maxTxnOps, DefaultMaxRequestBytes)
}

// etcdWithLimits starts an etcd of its own for the test, allowing maxTxnOps operations per Txn and
// requests of maxRequestBytes.
func etcdWithLimits(t *testing.T, maxTxnOps int, maxRequestBytes int64) *testEtcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
		MaxTxnOps: maxTxnOps, MaxRequestBytes: maxRequestBytes, UnsafeNoFsync: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	te := newTestEtcd(t)
	te.Endpoints = e.Endpoints()
	return te
}

// leadWide creates a topic of n partitions and makes s lead them all; it returns their epochs.
func leadWide(t *testing.T, c *Client, s *Session, name string, n int) (Topic, []int64) {
	t.Helper()
	top := newTopic(t, c, name, int32(n))
	epochs := make([]int64, n)
	for p := range epochs {
		epochs[p] = acquire(t, s, top.TP(int32(p)))
	}
	return top, epochs
}

// wideFlush is one flush's commits over every partition of top: 2 offsets from base and one
// producer's batch each, one compare per partition.
func wideFlush(top Topic, epochs []int64, base int64) []Commit {
	commits := make([]Commit, len(epochs))
	for p := range commits {
		commits[p] = Commit{TP: top.TP(int32(p)), Epoch: epochs[p], Entry: entry(base, 2, 64),
			Batches: []ProducerBatch{{ID: int64(p), FirstSeq: int32(base), LastSeq: int32(base) + 1, FirstOffset: base, LastOffset: base + 1}}}
	}
	return commits
}

// checkWide checks that every partition of top holds the flushes committed so far: next offset next,
// and its producer.
func checkWide(t *testing.T, c *Client, top Topic, n int, next int64) {
	t.Helper()
	st, _, err := c.loadState(testCtx(t), c.log)
	if err != nil {
		t.Fatal(err)
	}
	for p := range n {
		part := st.parts[top.TP(int32(p))]
		if part == nil {
			t.Fatalf("partition %d: no entries", p)
		}
		if producers := part.producerStates(); part.hwm != next || len(producers) != 1 || producers[0].ID != int64(p) {
			t.Fatalf("partition %d: next %d (want %d), producers %+v", p, part.hwm, next, producers)
		}
	}
}

// txnCounts reads how many commit Txns succeeded and failed so far.
func txnCounts(t *testing.T, c *Client) (ok, failed float64) {
	t.Helper()
	return counterValue(t, c.metrics.txns.WithLabelValues(resultOK)), counterValue(t, c.metrics.txns.WithLabelValues(resultError))
}

// With etcd allowing it, a flush's commit over 300 partitions (301 compares, 1 put) is one Txn.
func TestCommitOneTxnWhenEtcdAllows(t *testing.T) {
	te := etcdWithMaxTxnOps(t, 1024)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 1024 })
	s := newSession(t, c, "a", "127.0.0.1:1")
	const n = 300
	top, epochs := leadWide(t, c, s, "wide", n)

	for flush := range int64(2) {
		ok0, failed0 := txnCounts(t, c)
		for p, err := range s.Commit(testCtx(t), wideFlush(top, epochs, 2*flush)) {
			if err != nil {
				t.Fatalf("flush %d, partition %d: %v", flush, p, err)
			}
		}
		if ok, failed := txnCounts(t, c); ok-ok0 != 1 || failed != failed0 {
			t.Fatalf("flush %d of %d partitions: %v Txns (%v failed), want 1", flush, n, ok-ok0, failed-failed0)
		}
	}
	checkWide(t, c, top, n, 4)
	if got := c.maxTxnOps(); got != 1024 {
		t.Fatalf("operation limit %d, want 1024", got)
	}
}

// syncBuffer collects a logger's output.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// fallBackWarning is the start of the one warning a client logs when it falls back.
const fallBackWarning = "etcd refused a Txn for having more operations"

// clientAbove connects with MaxTxnOps 1024 to the shared etcd, which allows 128, logging to log.
func clientAbove(t *testing.T, te *testEtcd, log *syncBuffer) *Client {
	return limitedClient(t, te, 1024, 0, log)
}

// limitedClient connects to te packing Txns to ops operations and requests of bytes (0: the
// defaults), logging warnings to log.
func limitedClient(t *testing.T, te *testEtcd, ops int, bytes int64, log *syncBuffer) *Client {
	return te.client(t, func(cfg *Config) {
		cfg.MaxTxnOps, cfg.MaxRequestBytes = ops, bytes
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Output: log, Level: hclog.Warn})
	})
}

// An agent told to pack more operations than etcd allows: the Txn etcd refuses is packed again to
// etcd's default and sent again within the same Commit, which succeeds, and so do the next ones.
func TestCommitFallsBackWhenEtcdRefusesMoreOps(t *testing.T) {
	te := newTestEtcd(t) // the shared etcd: --max-txn-ops 128
	var log syncBuffer
	c := clientAbove(t, te, &log)
	s := newSession(t, c, "a", "127.0.0.1:1")
	const n = 300
	top, epochs := leadWide(t, c, s, "wide", n)

	ok0, failed0 := txnCounts(t, c)
	for p, err := range s.Commit(testCtx(t), wideFlush(top, epochs, 0)) {
		if err != nil {
			t.Fatalf("partition %d: %v", p, err)
		}
	}
	checkWide(t, c, top, n, 2)
	if got := c.maxTxnOps(); got != DefaultMaxTxnOps {
		t.Fatalf("operation limit %d after etcd refused 1024, want %d", got, DefaultMaxTxnOps)
	}
	// One Txn of 301 compares refused, then 300 partitions in Txns of at most 127 and their record's
	// compare.
	ok, failed := txnCounts(t, c)
	if want := math.Ceil(n / 127.0); ok-ok0 != want || failed-failed0 != 1 {
		t.Fatalf("%v Txns and %v failed, want about %v and 1 (refused)", ok-ok0, failed-failed0, want)
	}

	// The next flush is packed to 128 from the start: nothing refused.
	for p, err := range s.Commit(testCtx(t), wideFlush(top, epochs, 2)) {
		if err != nil {
			t.Fatalf("second flush, partition %d: %v", p, err)
		}
	}
	checkWide(t, c, top, n, 4)
	if _, again := txnCounts(t, c); again != failed {
		t.Fatalf("second flush: %v Txns failed", again-failed)
	}
	if got := strings.Count(log.String(), fallBackWarning); got != 1 {
		t.Fatalf("%d fall-back warnings, want 1; log:\n%s", got, log.String())
	}
}

// A group write of more operations than etcd allows falls back the same way; a status read over more
// partitions than that needs no Txn.
func TestGroupWriteAndStatusFallBack(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	t.Run("group write", func(t *testing.T) {
		var log syncBuffer
		c := clientAbove(t, te, &log)
		shards := newTopic(t, c, "__consumer_offsets", 1)
		data := newTopic(t, c, "data", 300)
		s := newSession(t, c, "a", "127.0.0.1:1")
		epoch, err := rev(s.Acquire(ctx, shards.TP(0), EpochHint{}))
		if err != nil {
			t.Fatal(err)
		}
		var offs []GroupOffset
		for p := range int32(300) {
			offs = append(offs, groupOffset(data, p, int64(p)))
		}
		meta := &GroupMeta{State: "Empty", Generation: 1}
		v, err := c.WriteGroup(ctx, GroupFence{Shard: shards.TP(0), Epoch: epoch}, "default", "g", GroupWrite{Meta: meta, Offsets: offs})
		if err != nil {
			t.Fatal(err)
		}
		g, err := c.LoadGroup(ctx, "default", "g")
		if err != nil || g.Meta == nil || len(g.Offsets) != 300 || g.Version != v {
			t.Fatalf("loaded %d offsets, meta %v, version %d (written %d): %v", len(g.Offsets), g.Meta, g.Version, v, err)
		}
		if got := c.maxTxnOps(); got != DefaultMaxTxnOps || strings.Count(log.String(), fallBackWarning) != 1 {
			t.Fatalf("operation limit %d, log:\n%s", got, log.String())
		}
	})
	t.Run("status", func(t *testing.T) {
		var log syncBuffer
		c := clientAbove(t, te, &log)
		top := newTopic(t, c, "status", 300)
		s := newSession(t, c, "b", "127.0.0.1:2")
		epoch, err := rev(s.Acquire(ctx, top.TP(299), EpochHint{}))
		if err != nil {
			t.Fatal(err)
		}
		commit(t, s, top.TP(299), epoch, entry(0, 7, 10))
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var parts int
		for _, p := range st.Partitions {
			if p.Topic != "status" {
				continue
			}
			parts++
			if want := map[bool]int64{true: 7}[p.Partition == 299]; p.NextOffset != want {
				t.Fatalf("partition %d: next offset %d, want %d", p.Partition, p.NextOffset, want)
			}
		}
		if parts != 300 {
			t.Fatalf("%d partitions in the status, want 300", parts)
		}
	})
}

// A client packing to etcd's default or less has nothing to fall back to: a Txn refused for too many
// operations (an etcd configured below its default) fails its commits, saying why, and is sent once.
func TestCommitRefusedAtDefault(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = 100 })
	s := newSession(t, c, "a", "127.0.0.1:1")
	tp := newTopic(t, c, "t", 1).TP(0)
	epoch, err := rev(s.Acquire(testCtx(t), tp, EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int32
	c.txnHook = func(context.Context, int, func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		sent.Add(1)
		return nil, rpctypes.ErrGRPCTooManyOps // etcd's answer as it comes over gRPC
	}
	err = s.Commit(testCtx(t), []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 1, 1)}})[0]
	if !isTooManyOps(err) || !strings.Contains(err.Error(), "--max-txn-ops is below 100") {
		t.Fatalf("commit: %v, want etcd's too many operations, explained", err)
	}
	if sent.Load() != 1 || c.maxTxnOps() != 100 {
		t.Fatalf("sent %d times, operation limit now %d; want once and 100", sent.Load(), c.maxTxnOps())
	}
}

// requestSizes is an etcd KV that records the size of each Txn request and applies none.
type requestSizes struct {
	pb.KVClient
	mu    sync.Mutex
	sizes []int
}

func (r *requestSizes) Txn(_ context.Context, in *pb.TxnRequest, _ ...grpc.CallOption) (*pb.TxnResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sizes = append(r.sizes, proto.Size(in))
	return &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: true}, nil
}

// A commit Txn stays under txnBytes of etcd's --max-request-bytes (1 MiB of the default 1.5 MiB),
// counting all of it: compares and puts. At 4,096 operations, 1,024 partitions
// of a flush are one Txn; 4,000 would be about 1.4 MiB in one, and are two, unless etcd allows 4 MiB.
func TestCommitTxnBytes(t *testing.T) {
	for _, tc := range []struct {
		partitions   int
		extents      int
		requestBytes int64
		txns         int
	}{{1024, 1, DefaultMaxRequestBytes, 1}, {4000, 8, DefaultMaxRequestBytes, 2}, {4000, 8, DefaultEmbedMaxRequestBytes, 1}} {
		kv := &requestSizes{}
		s := &Session{c: &Client{etcd: &clientv3.Client{KV: clientv3.NewKVFromKVClient(kv, nil)},
			cfg: Config{MaxTxnOps: DefaultEmbedMaxTxnOps, MaxRequestBytes: tc.requestBytes,
				CommitAttemptTimeout: time.Minute, CommitTimeout: time.Minute},
			keys: keys{prefix: DefaultPrefix}, log: hclog.NewNullLogger(), metrics: newMetrics(nil)}}
		commits := make([]Commit, tc.partitions)
		for i := range commits {
			// What a busy flush commits: large offsets, epoch and sequence numbers, a real object key.
			commits[i] = Commit{TP: TP{Topic: NewTopicID(), Partition: int32(i)}, Epoch: 123456789,
				Entry:   IndexEntry{BaseOffset: 1234567890, LastOffset: 1234567899, MaxTimestamp: 1700000000000},
				Batches: []ProducerBatch{{ID: 123456, FirstSeq: 1000000, LastSeq: 1000009, FirstOffset: 1234567890, LastOffset: 1234567899}},
			}
			for x := range tc.extents {
				commits[i].Entry.Extents = append(commits[i].Entry.Extents, Extent{Object: "seg/01JDZ5H2K3M4N5P6Q7R8S9T0VW-agent-1",
					Pos: 12345678 + int64(x)*16400, Len: 16400, CRC: 4000000000})
			}
		}
		for p, err := range s.Commit(context.Background(), commits) {
			if err != nil {
				t.Fatalf("%d partitions, partition %d: %v", tc.partitions, p, err)
			}
		}
		if len(kv.sizes) != tc.txns {
			t.Errorf("%d partitions, %d request bytes: %d Txns of %v bytes, want %d", tc.partitions, tc.requestBytes, len(kv.sizes), kv.sizes, tc.txns)
		}
		for _, size := range kv.sizes {
			if size > txnBytes(tc.requestBytes) {
				t.Errorf("%d partitions: a Txn of %d bytes, more than %d", tc.partitions, size, txnBytes(tc.requestBytes))
			}
		}
	}
}

// A group write is split by bytes as well as by operations: at 4,096 operations, 1,000 offsets with
// 2 KB of metadata each would be one Txn of 2 MB, which etcd refuses (--max-request-bytes, 1.5 MiB).
func TestWriteGroupBytes(t *testing.T) {
	te := etcdWithMaxTxnOps(t, DefaultEmbedMaxTxnOps)
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxTxnOps = DefaultEmbedMaxTxnOps })
	shards := newTopic(t, c, "__consumer_offsets", 1)
	data := newTopic(t, c, "data", 1000)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := rev(s.Acquire(ctx, shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	var offs []GroupOffset
	for p := range int32(1000) {
		o := groupOffset(data, p, int64(p))
		o.Metadata = strings.Repeat("m", 2000)
		offs = append(offs, o)
	}
	v, err := c.WriteGroup(ctx, GroupFence{Shard: shards.TP(0), Epoch: epoch}, "default", "g", GroupWrite{Offsets: offs})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.LoadGroup(ctx, "default", "g")
	if err != nil || len(g.Offsets) != 1000 || g.Version != v {
		t.Fatalf("loaded %d offsets at version %d (written %d): %v", len(g.Offsets), g.Version, v, err)
	}
}
