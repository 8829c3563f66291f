package coord

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkCommitPack measures what a flush's commit costs before it reaches etcd: validating each
// partition's commit, its compare and size, and packing the partitions into as few Txns as etcd's
// operation limit allows. One op is one flush's commit (the record's encoding is BenchmarkRecordEncode).
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
					Batches: []ProducerBatch{{ID: 7, Epoch: 0, FirstSeq: 0, LastSeq: 15, FirstOffset: 1000, LastOffset: 1015}},
				}
			}
			b.ReportAllocs()
			var txns int
			for b.Loop() {
				errs := make([]error, len(commits))
				packed := s.pack(s.buildUnits(commits, errs), errs, s.c.limits())
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

// BenchmarkCommit measures one flush's commit against the embedded etcd of the tests (unsynced, at
// etcd's default 128 operations a Txn, so 1,024 partitions go in 9 Txns sent at once): one entry of
// one extent per partition, every partition led by the session. One op is one flush's commit; the
// figure follows what a leader pays per partition per flush in coord and in etcd.
//
//	go test ./coord -run '^$' -bench 'Commit$' -benchmem
func BenchmarkCommit(b *testing.B) {
	for _, partitions := range []int32{8, 1024} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			ctx := context.Background()
			s, commits := ledCommits(b, fmt.Sprintf("commit-%d", partitions), partitions)
			next := int64(0)
			b.ReportAllocs()
			for b.Loop() {
				flushCommits(commits, next)
				for _, err := range s.Commit(ctx, commits) {
					if err != nil {
						b.Fatal(err)
					}
				}
				next += 16
			}
		})
	}
}

// ledCommits is a session of a fresh client (under a prefix of its own, from name) leading every
// partition of a new topic of partitions, and a commit for each partition at its epoch, entries to fill.
func ledCommits(b *testing.B, name string, partitions int32) (*Session, []Commit) {
	b.Helper()
	ctx := context.Background()
	c, err := Connect(ctx, Config{Endpoints: sharedEtcd, Prefix: fmt.Sprintf("/b/%s-%d/", name, prefixSeq.Add(1)),
		Logger: hclog.NewNullLogger(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	topic, err := c.CreateTopic(ctx, Topic{Name: "data", Partitions: partitions})
	if err != nil {
		b.Fatal(err)
	}
	s, err := c.Register(ctx, AgentInfo{ID: "a", Addr: "127.0.0.1:1", Group: "default"}, 30*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close(ctx) })
	commits := make([]Commit, partitions)
	for p := range partitions {
		l, err := s.Acquire(ctx, topic.TP(p), EpochHint{})
		if err != nil {
			b.Fatal(err)
		}
		commits[p] = Commit{TP: topic.TP(p), Epoch: l.Rev}
	}
	return s, commits
}

// flushCommits fills commits with one flush's entries from offset next: 16 offsets in one extent per
// partition.
func flushCommits(commits []Commit, next int64) {
	object := fmt.Sprintf("seg/%020d-a", next)
	for p := range commits {
		commits[p].Entry = IndexEntry{BaseOffset: next, LastOffset: next + 15, MaxTimestamp: 1700000000000,
			Extents: []Extent{{Object: object, Pos: int64(32 + p*16400), Len: 16400, CRC: 7}}}
	}
}

// BenchmarkCommitTwoDeep is BenchmarkCommit at 1,024 partitions with two flushes' commits in flight at
// once, as pipelined commits would send them (docs/INTERNALS.md, "Pipelined commits — designed, not
// built"), but without the compare on the previous record that would keep their order: an upper bound
// of what a depth of two gains in etcd. One op is two flushes' commits sent together; ns/flush
// compares with BenchmarkCommit's ns/op.
//
//	go test ./coord -run '^$' -bench 'CommitTwoDeep$' -benchmem
func BenchmarkCommitTwoDeep(b *testing.B) {
	const partitions = 1024
	ctx := context.Background()
	s, base := ledCommits(b, "commit2", partitions)
	flushes := [2][]Commit{base, slices.Clone(base)}
	next := int64(0)
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for j := range flushes {
			flushCommits(flushes[j], next+int64(16*j))
			wg.Go(func() {
				for _, err := range s.Commit(ctx, flushes[j]) {
					if err != nil {
						b.Error(err)
					}
				}
			})
		}
		wg.Wait()
		next += 32
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(2*b.N), "ns/flush")
}
