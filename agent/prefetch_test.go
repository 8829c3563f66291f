package agent

import (
	"crypto/rand"
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

	a.reader.Purge() // a cached what it wrote: start cold
	tc.store.SetFault(segstore.OpGetRange, func(string) error { time.Sleep(delay); return nil })
	req := fetchAllReq("t", partitions)
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

// A fetch also starts the reads of the consumer's next fetch (readAhead), so that a consumer catching
// up does not wait for S3 after every answer.
func TestFetchReadsAhead(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a")
	createTopic(t, kgoClient(t, nil, a), "t", 1, nil)
	cl := kgoClient(t, nil, a)
	const records = 12
	for range records { // one extent each: every produce is its own flush
		r := &kgo.Record{Topic: "t", Value: make([]byte, 1000)}
		rand.Read(r.Value) // incompressible: kgo compresses batches by default
		if err := cl.ProduceSync(testCtx(t), r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	a.reader.Purge()
	req := kmsg.NewPtrFetchRequest()
	req.Version, req.MaxBytes, req.MinBytes = 12, 50<<20, 1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes = 3000 // two or three of the batches
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp, _, _ := a.fillFetch(testCtx(t), req, "")
	var answered int
	for raw := resp.Topics[0].Partitions[0].RecordBatches; len(raw) > 0; answered++ {
		var b kmsg.RecordBatch
		if err := b.ReadFrom(raw); err != nil {
			t.Fatal(err)
		}
		raw = raw[12+b.Length:]
	}
	if answered == 0 || answered >= records/2 {
		t.Fatalf("the fetch answered %d batches: the test needs a few of %d", answered, records)
	}
	// The fetch registered every read it started before it returned; they finish in the background.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := a.reader.Stats()
		cached, reading := st.Extents, st.Reads
		if reading == 0 {
			if cached < 2*answered {
				t.Fatalf("answered %d batches and read %d extents: the next fetch's were not read ahead", answered, cached)
			}
			t.Logf("answered %d batches, read %d extents", answered, cached)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d reads still running", reading)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
