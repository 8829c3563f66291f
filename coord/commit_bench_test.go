package coord

import (
	"fmt"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// BenchmarkCommitPack measures what a flush's commit costs before it reaches etcd: validating each
// partition's commit, encoding its index entry and producer state (JSON), and packing the partitions
// into as few Txns as etcd's operation limit allows. One op is one flush's commit.
//
//	go test ./coord -run '^$' -bench CommitPack -benchmem
func BenchmarkCommitPack(b *testing.B) {
	for _, partitions := range []int{8, 1024} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			s := &Session{c: &Client{cfg: Config{MaxTxnOps: DefaultMaxTxnOps, MaxRequestBytes: DefaultMaxRequestBytes}, keys: keys{prefix: DefaultPrefix},
				log: hclog.NewNullLogger(), metrics: newMetrics(nil)}}
			commits := make([]Commit, partitions)
			for i := range commits {
				var topic TopicID
				topic[0] = byte(i % 4)
				commits[i] = Commit{
					TP:    TP{Topic: topic, Partition: int32(i)},
					Epoch: 42,
					Entry: IndexEntry{BaseOffset: 1000, LastOffset: 1015, MaxTimestamp: 1700000000000,
						Extents: []Extent{{Object: "seg/01JDZ0000000000000000000-agent-1", Pos: int64(32 + i*16400), Len: 16400, CRC: 7}}},
					Producers: []ProducerState{{ID: 7, Epoch: 0, Batches: []SeqBatch{{FirstSeq: 0, LastSeq: 15, FirstOffset: 1000, LastOffset: 1015}}}},
				}
			}
			b.ReportAllocs()
			var txns int
			for b.Loop() {
				errs := make([]error, len(commits))
				packed, _ := s.pack(s.buildUnits(commits, errs), errs, s.c.limits())
				txns = len(packed)
				for _, err := range errs {
					if err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(txns), "txns/flush")
		})
	}
}
