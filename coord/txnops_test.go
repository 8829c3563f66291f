package coord

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// etcdWithMaxTxnOps starts an etcd of its own for the test, allowing maxTxnOps operations per Txn
// (the shared one allows etcd's default, 128).
func etcdWithMaxTxnOps(t *testing.T, maxTxnOps int) *testEtcd {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
		MaxTxnOps: maxTxnOps, UnsafeNoFsync: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	te := newTestEtcd(t)
	te.Endpoints = e.Endpoints()
	return te
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

// A commit Txn stays under maxTxnBytes, well under etcd's --max-request-bytes (1.5 MiB), counting all
// of it: compares and the Else branch's reads too, which weigh as much as the puts. At 4,096
// operations, 1,024 partitions of a flush are one Txn; 2,048 would be about 1.5 MiB in one, and are
// two.
func TestCommitTxnBytes(t *testing.T) {
	for _, tc := range []struct{ partitions, txns int }{{1024, 1}, {2048, 2}} {
		kv := &requestSizes{}
		s := &Session{c: &Client{etcd: &clientv3.Client{KV: clientv3.NewKVFromKVClient(kv, nil)},
			cfg:  Config{MaxTxnOps: DefaultEmbedMaxTxnOps, CommitAttemptTimeout: time.Minute, CommitTimeout: time.Minute},
			keys: keys{prefix: DefaultPrefix}, log: hclog.NewNullLogger(), metrics: newMetrics(nil)}}
		commits := make([]Commit, tc.partitions)
		for i := range commits {
			// What a busy flush commits: large offsets, epoch and sequence numbers, a real object key.
			commits[i] = Commit{TP: TP{Topic: NewTopicID(), Partition: int32(i)}, Epoch: 123456789,
				Entry: IndexEntry{BaseOffset: 1234567890, LastOffset: 1234567899, MaxTimestamp: 1700000000000,
					Extents: []Extent{{Object: "seg/01JDZ5H2K3M4N5P6Q7R8S9T0VW-agent-1", Pos: 12345678, Len: 16400, CRC: 4000000000}}},
				Producers: []ProducerState{{ID: 123456, Batches: []SeqBatch{{FirstSeq: 1000000, LastSeq: 1000009, FirstOffset: 1234567890, LastOffset: 1234567899}}}},
			}
		}
		for p, err := range s.Commit(context.Background(), commits) {
			if err != nil {
				t.Fatalf("%d partitions, partition %d: %v", tc.partitions, p, err)
			}
		}
		if len(kv.sizes) != tc.txns {
			t.Errorf("%d partitions: %d Txns of %v bytes, want %d", tc.partitions, len(kv.sizes), kv.sizes, tc.txns)
		}
		for _, size := range kv.sizes {
			if size > maxTxnBytes {
				t.Errorf("%d partitions: a Txn of %d bytes, more than %d", tc.partitions, size, maxTxnBytes)
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
	epoch, err := s.Acquire(ctx, shards.TP(0))
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
