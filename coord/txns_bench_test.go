package coord

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkWriteTxn measures one transaction's coordinator writes against the embedded etcd of the
// tests (unsynced: etcd's fsync, which dominates on real disks, is not in it): Ongoing (one
// AddPartitionsToTxn), PrepareCommit, CompleteCommit, each one fenced, versioned Txn. One op is one
// transaction; ns/write is the latency of one of its writes.
//
//	go test ./coord -run '^$' -bench WriteTxn
func BenchmarkWriteTxn(b *testing.B) {
	for _, partitions := range []int{1, 100} {
		b.Run(fmt.Sprintf("partitions=%d", partitions), func(b *testing.B) {
			ctx := context.Background()
			c, err := Connect(ctx, Config{Endpoints: sharedEtcd, Prefix: fmt.Sprintf("/b/write-txn-%d-%d/", partitions, prefixSeq.Add(1)),
				Logger: hclog.NewNullLogger(), Registerer: prometheus.NewRegistry()})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			shards, err := c.CreateTopic(ctx, Topic{Name: "__consumer_offsets", Partitions: 1})
			if err != nil {
				b.Fatal(err)
			}
			data, err := c.CreateTopic(ctx, Topic{Name: "data", Partitions: int32(partitions)})
			if err != nil {
				b.Fatal(err)
			}
			s, err := c.Register(ctx, AgentInfo{ID: "a", Addr: "127.0.0.1:1", Group: "default"}, 30*time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(ctx)
			l, err := s.Acquire(ctx, shards.TP(0), EpochHint{})
			if err != nil {
				b.Fatal(err)
			}
			f := GroupFence{Shard: shards.TP(0), Epoch: l.Rev}
			m := &TxnMeta{ProducerID: 1000, PrevProducerID: -1, PrevEpoch: -1, TimeoutMs: 60000, State: TxnEmpty}
			v, err := c.WriteTxn(ctx, f, "default", "tx", m, 0)
			if err != nil {
				b.Fatal(err)
			}
			for p := range int32(partitions) {
				m.Partitions = append(m.Partitions, data.TP(p))
			}
			writes := 0
			for b.Loop() {
				for _, state := range []string{TxnOngoing, TxnPrepareCommit, TxnCompleteCommit} {
					m.State = state
					if v, err = c.WriteTxn(ctx, f, "default", "tx", m, v); err != nil {
						b.Fatal(err)
					}
					writes++
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(writes), "ns/write")
		})
	}
}
