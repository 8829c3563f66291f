package coord

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// sentTxns passes a client's Txns on to etcd and records each one's size and etcd's answer, as it
// comes over gRPC.
type sentTxns struct {
	pb.KVClient
	mu    sync.Mutex
	sizes []int
	errs  []error
}

// recordTxns makes c send its Txns through a sentTxns.
func recordTxns(c *Client) *sentTxns {
	r := &sentTxns{KVClient: clientv3.RetryKVClient(c.etcd)}
	c.etcd.KV = clientv3.NewKVFromKVClient(r, c.etcd)
	return r
}

func (r *sentTxns) Txn(ctx context.Context, in *pb.TxnRequest, opts ...grpc.CallOption) (*pb.TxnResponse, error) {
	resp, err := r.KVClient.Txn(ctx, in, opts...)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sizes, r.errs = append(r.sizes, proto.Size(in)), append(r.errs, err)
	return resp, err
}

// since returns the sizes and answers of the Txns after the first n.
func (r *sentTxns) since(n int) ([]int, []error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int(nil), r.sizes[n:]...), append([]error(nil), r.errs[n:]...)
}

func (r *sentTxns) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sizes)
}

// idempotentFlush is one flush's commits over every partition of top as a busy agent makes them: an
// index entry of large offsets in extents of objects of their own (names of about 50 bytes, so that
// the record's size follows the extents), and one batch of each of producers idempotent producers
// per partition (ids p, n+p, 2n+p, …).
func idempotentFlush(top Topic, epochs []int64, base int64, extents, producers int) []Commit {
	n := len(epochs)
	commits := make([]Commit, n)
	for p := range commits {
		cm := Commit{TP: top.TP(int32(p)), Epoch: epochs[p],
			Entry: IndexEntry{BaseOffset: base, LastOffset: base + 9, MaxTimestamp: 1700000000000}}
		for x := range extents {
			cm.Entry.Extents = append(cm.Entry.Extents, Extent{Object: fmt.Sprintf("seg/01JDZ5H2K3M4N5P6Q7R8S9T0VW-agent-1-%05d-%05d", p, x),
				Pos: 12345678 + int64(x)*16400, Len: 16400, CRC: 4000000000})
		}
		for k := range producers {
			cm.Batches = append(cm.Batches, ProducerBatch{ID: int64(k*n + p), Epoch: 3, FirstSeq: 1000000, LastSeq: 1000009,
				FirstOffset: base, LastOffset: base + 9})
		}
		commits[p] = cm
	}
	return commits
}

// checkFlushed checks that every partition of top holds the flushes committed so far: next offset
// next, and its producers.
func checkFlushed(t *testing.T, c *Client, top Topic, n int, next int64, producers int) {
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
		if states := part.producerStates(); part.hwm != next || len(states) != producers {
			t.Fatalf("partition %d: next %d (want %d), %d producers (want %d)", p, part.hwm, next, len(states), producers)
		}
	}
}

// packedTxns is how many Txns commits would take at lim.
func packedTxns(s *Session, commits []Commit, lim txnLimits) int {
	commits = append([]Commit(nil), commits...)
	errs := make([]error, len(commits))
	txns := s.pack(s.buildUnits(commits, errs), errs, lim)
	return len(txns)
}

// fallBackBytesWarning is the start of the one warning a client logs when it falls back to etcd's
// default request size.
const fallBackBytesWarning = "etcd refused a Txn as larger than its --max-request-bytes"

// bigFlushOffset is the first offset of the flushes below: large, as a busy partition's.
const bigFlushOffset = 1234567890

// With etcd allowing 4,096 operations and 4 MiB per request, a flush's commit over 1,024 partitions
// of 16 extents each is one Txn; at etcd's default 1.5 MiB the Txn budget, 1 MiB, splits it.
func TestCommitOneTxnAtLargerRequests(t *testing.T) {
	te := etcdWithLimits(t, DefaultEmbedMaxTxnOps, DefaultEmbedMaxRequestBytes)
	c := te.client(t, func(cfg *Config) {
		cfg.MaxTxnOps = DefaultEmbedMaxTxnOps
		cfg.MaxRequestBytes = DefaultEmbedMaxRequestBytes
	})
	sent := recordTxns(c)
	s := newSession(t, c, "a", "127.0.0.1:1")
	const n = 1024
	top, epochs := leadWide(t, c, s, "wide", n)

	for flush := range int64(2) {
		commits := idempotentFlush(top, epochs, bigFlushOffset+10*flush, 16, 1)
		if got := packedTxns(s, commits, txnLimits{ops: DefaultEmbedMaxTxnOps, requestBytes: DefaultMaxRequestBytes}); got != 2 {
			t.Fatalf("at etcd's default request size the flush packs into %d Txns, want 2: not what this test is about", got)
		}
		ok0, failed0 := txnCounts(t, c)
		sent0 := sent.count()
		for p, err := range s.Commit(testCtx(t), commits) {
			if err != nil {
				t.Fatalf("flush %d, partition %d: %v", flush, p, err)
			}
		}
		sizes, _ := sent.since(sent0)
		if ok, failed := txnCounts(t, c); ok-ok0 != 1 || failed != failed0 || len(sizes) != 1 {
			t.Fatalf("flush %d of %d partitions: %v Txns (%v failed) of %v bytes, want 1", flush, n, ok-ok0, failed-failed0, sizes)
		}
		t.Logf("flush %d: one Txn of %d bytes", flush, sizes[0])
	}
	checkFlushed(t, c, top, n, bigFlushOffset+20, 1)
	if got := c.maxRequestBytes(); got != DefaultEmbedMaxRequestBytes {
		t.Fatalf("request size %d, want %d", got, DefaultEmbedMaxRequestBytes)
	}
}

// What the etcd client returns for a request larger than etcd's --max-request-bytes (1.5 MiB here):
// up to 512 KiB more, etcd's own "request is too large"; more, its gRPC server's "received message
// larger than max"; beyond the client's own gRPC limit (2 MiB unless set, which Connect sets), the
// client's "trying to send message larger than max". Each is a request too large, which nothing of
// was applied.
func TestRequestTooLargeErrors(t *testing.T) {
	te := newTestEtcd(t) // the shared etcd: --max-request-bytes 1.5 MiB
	ctx := testCtx(t)
	c := te.client(t, func(cfg *Config) { cfg.MaxRequestBytes = DefaultEmbedMaxRequestBytes })
	raw, err := clientv3.New(clientv3.Config{Endpoints: te.Endpoints, Logger: zap.NewNop()}) // gRPC's own 2 MiB send limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	key := te.Prefix + "big"
	for _, tc := range []struct {
		name   string
		client *clientv3.Client
		size   int
		want   codes.Code
		msg    string
		etcd   bool // translated by the client into rpctypes.ErrRequestTooLarge
	}{
		{"etcd", c.etcd, 1700 << 10, codes.InvalidArgument, "etcdserver: request is too large", true},
		{"etcd's gRPC server", c.etcd, 2200 << 10, codes.ResourceExhausted, "grpc: received message larger than max (", false},
		{"the client's gRPC", raw, 2200 << 10, codes.ResourceExhausted, "trying to send message larger than max (", false},
	} {
		_, err := tc.client.Txn(ctx).Then(clientv3.OpPut(key, strings.Repeat("v", tc.size))).Commit()
		t.Logf("%s: %T %v", tc.name, err, err)
		if !isRequestTooLarge(err) || isTooManyOps(err) || retryableTxnError(err, false) {
			t.Errorf("%s: %v: not recognised as too large, or taken for something else", tc.name, err)
		}
		var ee rpctypes.EtcdError
		code := status.Code(err)
		if errors.As(err, &ee) {
			code = ee.Code()
		}
		if code != tc.want || !strings.Contains(fmt.Sprint(err), tc.msg) || errors.Is(err, rpctypes.ErrRequestTooLarge) != tc.etcd {
			t.Errorf("%s: %v (%v), want %v %q", tc.name, err, code, tc.want, tc.msg)
		}
	}
	if resp, err := c.etcd.Get(ctx, key); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("a refused request wrote %v (%v)", resp.Kvs, err)
	}
	// etcd's answer as it comes over gRPC (a test's hook), and what is not a request too large.
	for err, want := range map[error]bool{
		rpctypes.ErrGRPCRequestTooLarge:        true,
		rpctypes.ErrRequestTooLarge:            true,
		rpctypes.ErrGRPCTooManyOps:             false,
		rpctypes.ErrTooManyRequests:            false, // ResourceExhausted too
		rpctypes.ErrGRPCRequestTooManyRequests: false,
		status.Error(codes.ResourceExhausted, "grpc: received message after decompression larger than max 1"): false,
		context.DeadlineExceeded: false,
	} {
		if got := isRequestTooLarge(err); got != want {
			t.Errorf("isRequestTooLarge(%v) = %v, want %v", err, got, want)
		}
	}
}

// An agent told etcd takes larger requests than it does: the Txn etcd refuses is packed again to
// etcd's default and sent again within the same Commit, which succeeds, and so do the next ones.
// etcd refuses a request up to 512 KiB above its limit itself, and a larger one in its gRPC server:
// both fall back.
func TestCommitFallsBackWhenEtcdRefusesLargerRequests(t *testing.T) {
	etcd := etcdWithLimits(t, DefaultEmbedMaxTxnOps, DefaultMaxRequestBytes)
	for _, tc := range []struct {
		name               string
		extents, producers int
		minBytes, maxBytes int // of the refused Txn
		code               codes.Code
	}{
		{"etcd refuses", 24, 2, DefaultMaxRequestBytes, DefaultMaxRequestBytes + requestOverheadBytes, codes.InvalidArgument},
		{"gRPC refuses", 34, 2, DefaultMaxRequestBytes + requestOverheadBytes, txnBytes(DefaultEmbedMaxRequestBytes), codes.ResourceExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A short prefix of its own: the Txns' sizes depend on the keys'.
			te := &testEtcd{Endpoints: etcd.Endpoints, Prefix: fmt.Sprintf("/t/large-%d/", prefixSeq.Add(1))}
			var log syncBuffer
			c := limitedClient(t, te, DefaultEmbedMaxTxnOps, DefaultEmbedMaxRequestBytes, &log)
			sent := recordTxns(c)
			s := newSession(t, c, "a", "127.0.0.1:1")
			const n = 1024
			top, epochs := leadWide(t, c, s, "wide", n)

			ok0, failed0 := txnCounts(t, c)
			sent0 := sent.count()
			for p, err := range s.Commit(testCtx(t), idempotentFlush(top, epochs, bigFlushOffset, tc.extents, tc.producers)) {
				if err != nil {
					t.Fatalf("partition %d: %v", p, err)
				}
			}
			// One Txn refused, then the partitions again in Txns of at most 1 MiB.
			sizes, errs := sent.since(sent0)
			checkFlushed(t, c, top, n, bigFlushOffset+10, tc.producers)
			if got := c.maxRequestBytes(); got != DefaultMaxRequestBytes {
				t.Fatalf("request size %d after etcd refused more, want %d", got, DefaultMaxRequestBytes)
			}
			t.Logf("Txns of %v bytes", sizes)
			if len(sizes) < 3 || sizes[0] <= tc.minBytes || sizes[0] > tc.maxBytes || status.Code(errs[0]) != tc.code {
				t.Fatalf("first Txn of %v bytes: %v; want between %d and %d, refused with %v", sizes, errs[0], tc.minBytes, tc.maxBytes, tc.code)
			}
			for i, size := range sizes[1:] {
				if size > txnBytes(DefaultMaxRequestBytes) || errs[1+i] != nil {
					t.Fatalf("Txn %d after the refusal: %d bytes, %v", i+1, size, errs[1+i])
				}
			}
			ok, failed := txnCounts(t, c)
			if ok-ok0 != float64(len(sizes)-1) || failed-failed0 != 1 {
				t.Fatalf("%v Txns and %v failed, want %d and 1 (refused)", ok-ok0, failed-failed0, len(sizes)-1)
			}

			// The next flush is packed to 1 MiB from the start: nothing refused.
			for p, err := range s.Commit(testCtx(t), idempotentFlush(top, epochs, bigFlushOffset+10, tc.extents, tc.producers)) {
				if err != nil {
					t.Fatalf("second flush, partition %d: %v", p, err)
				}
			}
			checkFlushed(t, c, top, n, bigFlushOffset+20, tc.producers)
			if _, again := txnCounts(t, c); again != failed {
				t.Fatalf("second flush: %v Txns failed", again-failed)
			}
			if got := strings.Count(log.String(), fallBackBytesWarning); got != 1 || !strings.Contains(log.String(), "--etcd-max-request-bytes") {
				t.Fatalf("%d fall-back warnings, want 1 naming --etcd-max-request-bytes; log:\n%s", got, log.String())
			}
		})
	}
}

// A group write larger than etcd takes falls back the same way.
func TestGroupWriteFallsBackWhenEtcdRefusesLargerRequests(t *testing.T) {
	te := etcdWithLimits(t, DefaultEmbedMaxTxnOps, DefaultMaxRequestBytes)
	ctx := testCtx(t)
	var log syncBuffer
	c := limitedClient(t, te, DefaultEmbedMaxTxnOps, DefaultEmbedMaxRequestBytes, &log)
	sent := recordTxns(c)
	shards := newTopic(t, c, "__consumer_offsets", 1)
	data := newTopic(t, c, "data", 800)
	s := newSession(t, c, "a", "127.0.0.1:1")
	epoch, err := rev(s.Acquire(ctx, shards.TP(0), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	var offs []GroupOffset
	for p := range int32(800) {
		o := groupOffset(data, p, int64(p))
		o.Metadata = strings.Repeat("m", 2000)
		offs = append(offs, o)
	}
	sent0 := sent.count()
	v, err := c.WriteGroup(ctx, GroupFence{Shard: shards.TP(0), Epoch: epoch}, "default", "g",
		GroupWrite{Meta: &GroupMeta{State: "Empty", Generation: 1}, Offsets: offs})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.LoadGroup(ctx, "default", "g")
	if err != nil || g.Meta == nil || len(g.Offsets) != 800 || g.Version != v {
		t.Fatalf("loaded %d offsets, meta %v, version %d (written %d): %v", len(g.Offsets), g.Meta, g.Version, v, err)
	}
	sizes, errs := sent.since(sent0)
	if len(sizes) < 3 || sizes[0] <= DefaultMaxRequestBytes || !isRequestTooLarge(errs[0]) {
		t.Fatalf("Txns of %v bytes, the first %v; want one refused as too large, then 2 or more", sizes, errs[0])
	}
	if got := c.maxRequestBytes(); got != DefaultMaxRequestBytes || strings.Count(log.String(), fallBackBytesWarning) != 1 {
		t.Fatalf("request size %d, log:\n%s", got, log.String())
	}
}

// refuseTooLarge makes the first lost Txn attempts of c apply but lose their answer, the next one
// answer etcd's "request is too large", as it comes over gRPC, and the later ones go through. It
// counts the attempts.
func refuseTooLarge(c *Client, lost int32) *atomic.Int32 {
	var attempts atomic.Int32
	c.txnHook = func(ctx context.Context, _ int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error) {
		switch n := attempts.Add(1); {
		case n <= lost:
			return lostAnswer(ctx, do)
		case n == lost+1:
			return nil, rpctypes.ErrGRPCRequestTooLarge
		}
		return do(ctx)
	}
	return &attempts
}

// A client assuming etcd's default request size or less has nothing to fall back to: a Txn refused as
// too large (an etcd configured below its default) fails its commits, saying why, and is sent once.
// So does a Txn of one partition's commit larger than the Txn budget by itself, whatever the client
// assumes: its refusal says nothing of etcd's limit, which the client keeps.
func TestCommitRefusedTooLarge(t *testing.T) {
	te := newTestEtcd(t)
	for i, tc := range []struct {
		name         string
		requestBytes int64
		extents      int
	}{
		{"at etcd's default", DefaultMaxRequestBytes, 1},
		{"below it", 1 << 20, 1},
		{"one partition too large", DefaultEmbedMaxRequestBytes, 60000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := te.client(t, func(cfg *Config) { cfg.MaxRequestBytes = tc.requestBytes })
			s := newSession(t, c, "a", "127.0.0.1:1")
			top := newTopic(t, c, fmt.Sprintf("t%d", i), 1)
			epoch, err := rev(s.Acquire(testCtx(t), top.TP(0), EpochHint{}))
			if err != nil {
				t.Fatal(err)
			}
			sent := refuseTooLarge(c, 0)
			err = s.Commit(testCtx(t), idempotentFlush(top, []int64{epoch}, bigFlushOffset, tc.extents, 1))[0]
			if !isRequestTooLarge(err) || !strings.Contains(err.Error(), "packed for an etcd --max-request-bytes of") {
				t.Fatalf("commit: %v, want etcd's request too large, explained", err)
			}
			if sent.Load() != 1 || c.maxRequestBytes() != tc.requestBytes {
				t.Fatalf("sent %d times, request size now %d; want once and %d", sent.Load(), c.maxRequestBytes(), tc.requestBytes)
			}
		})
	}
}

// A Txn refused as too large after an earlier attempt timed out: that attempt may have applied on a
// member allowing more. A commit's partitions, packed again, count the refused Txn's record, written
// by that attempt, as their commit; a group write's outcome is unknown (its smaller Txns would not know the
// refused one's token). The client falls back either way.
func TestRefusedTooLargeAfterAnAttempt(t *testing.T) {
	te := newTestEtcd(t)
	larger := func(cfg *Config) { cfg.MaxRequestBytes = DefaultEmbedMaxRequestBytes }
	t.Run("commit", func(t *testing.T) {
		c := te.client(t, larger)
		s := newSession(t, c, "a", "127.0.0.1:1")
		top := newTopic(t, c, "commit", 1)
		epoch, err := rev(s.Acquire(testCtx(t), top.TP(0), EpochHint{}))
		if err != nil {
			t.Fatal(err)
		}
		attempts := refuseTooLarge(c, 1) // the first applies, its answer lost; the second is refused
		err = s.Commit(testCtx(t), idempotentFlush(top, []int64{epoch}, bigFlushOffset, 1, 1))[0]
		if err != nil || attempts.Load() != 3 || c.maxRequestBytes() != DefaultMaxRequestBytes {
			t.Fatalf("commit: %v after %d attempts, request size %d; want committed after 3, %d", err, attempts.Load(),
				c.maxRequestBytes(), DefaultMaxRequestBytes)
		}
		checkFlushed(t, c, top, 1, bigFlushOffset+10, 1)
	})
	t.Run("group write", func(t *testing.T) {
		c := te.client(t, larger)
		shards := newTopic(t, c, "__consumer_offsets", 1)
		s := newSession(t, c, "b", "127.0.0.1:2")
		epoch, err := rev(s.Acquire(testCtx(t), shards.TP(0), EpochHint{}))
		if err != nil {
			t.Fatal(err)
		}
		attempts := refuseTooLarge(c, 1)
		_, err = c.WriteGroup(testCtx(t), GroupFence{Shard: shards.TP(0), Epoch: epoch}, "default", "g",
			GroupWrite{Meta: &GroupMeta{State: "Empty", Generation: 1}})
		if !isRequestTooLarge(err) || errors.Is(err, ErrGroupChanged) || attempts.Load() != 2 {
			t.Fatalf("group write: %v after %d attempts; want etcd's request too large after 2", err, attempts.Load())
		}
		if got := c.maxRequestBytes(); got != DefaultMaxRequestBytes {
			t.Fatalf("request size %d, want %d", got, DefaultMaxRequestBytes)
		}
	})
}
