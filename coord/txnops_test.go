package coord

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

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
