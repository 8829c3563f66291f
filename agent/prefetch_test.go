package agent

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/segstore"
)

// A fetch of many partitions whose extents are not cached reads them all at once: it takes about one
// GET's latency, not one per partition.
func TestFetchReadsExtentsConcurrently(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a")
	const partitions, delay = 8, 200 * time.Millisecond
	createTopic(t, kgoClient(t, nil, a), "t", partitions, nil)
	produced := produceN(t, kgoClient(t, []kgo.Opt{kgo.RecordPartitioner(kgo.RoundRobinPartitioner())}, a), "t", "v", 800)

	a.reader.purge() // a cached what it wrote: start cold
	tc.store.SetFault(segstore.OpGetRange, func(string) error { time.Sleep(delay); return nil })
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxBytes, req.MinBytes = 12, 50<<20, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "t"
	for p := range int32(partitions) {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.PartitionMaxBytes = p, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	start := time.Now()
	resp, n, _ := a.fillFetch(testCtx(t), req, "")
	took := time.Since(start)
	for _, p := range resp.Topics[0].Partitions {
		if p.ErrorCode != 0 || len(p.RecordBatches) == 0 {
			t.Fatalf("partition %d: error %d, %d bytes", p.Partition, p.ErrorCode, len(p.RecordBatches))
		}
	}
	if took > partitions*delay/2 {
		t.Errorf("a cold fetch of %d partitions took %v with %v per GET: its reads were not concurrent", partitions, took, delay)
	}
	tc.store.SetFault(segstore.OpGetRange, nil)
	checkDense(t, produced, consumeAll(t, []*Agent{a}, "t", len(produced)))
	t.Logf("%d bytes of %d partitions in %v", n, partitions, took)
}
