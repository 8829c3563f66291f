package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/segstore"
)

// fastMaintenance runs an agent's maintenance every few milliseconds; noMaintenance not within a test.
func fastMaintenance(c *Config) { c.MaintenanceInterval = 5 * time.Millisecond }
func noMaintenance(c *Config)   { c.MaintenanceInterval = time.Hour }

// A partition's many small flushes are merged into a segment by its leader's maintenance; every record
// is then served from the segment at its offset, to a fetch from any offset, to ListOffsets by
// timestamp, and by an agent that loads the partition afresh.
func TestMaintenanceMergesAndServesSegments(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1", fastMaintenance)
	c := ledTopicConn(t, a1, "merged")
	tp := topicTP(t, a1, "merged", 0)
	var want []string
	base := time.Now().UnixMilli() - 1000
	for i := range 40 { // one flush each: more than a tail holds before it is merged
		vals := values(fmt.Sprint(i), 3)
		ts := []int64{base + int64(10*i), base + int64(10*i+1), base + int64(10*i+2)}
		wantOK(t, "produce", c.produceOne("merged", 0, valueBatch(-1, -1, -1, ts, vals...)).ErrorCode)
		want = append(want, vals...)
	}
	waitFor(t, "a segment to cover the first flushes", func() bool {
		pi, _ := a1.cache.PartitionIndex(tp)
		return len(pi.Segments) > 0
	})
	pi, _ := a1.cache.PartitionIndex(tp)
	if pi.Segments[0].BaseOffset != 0 || pi.HighWatermark != 120 {
		t.Fatalf("after the merge: segments %+v, high watermark %d", pi.Segments, pi.HighWatermark)
	}
	readAll := func(c *rawConn) {
		t.Helper()
		for _, from := range []int64{0, 1, 50, 95, 119} {
			var got []string
			for offset := from; offset < 120; {
				sp := c.fetchOne("merged", 0, offset, 1<<20)
				wantOK(t, "fetch", sp.ErrorCode)
				recs := decodeRecords(t, sp)
				if len(recs) == 0 {
					t.Fatalf("fetch from %d: nothing", offset)
				}
				for _, r := range recs {
					if r.Offset < offset {
						continue // the rest of the batch that holds the fetch offset, as Kafka serves it
					}
					if r.Offset != offset {
						t.Fatalf("fetch from %d: record at %d where %d was due", from, r.Offset, offset)
					}
					got = append(got, string(r.Value))
					offset++
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want[from:]) {
				t.Fatalf("fetch from %d: %v", from, got)
			}
		}
	}
	readAll(c)
	if lo := c.listOffset("merged", 0, base+200); lo.Offset != 60 || lo.Timestamp != base+200 {
		t.Fatalf("ListOffsets at base+200: offset %d, timestamp %d; want 60", lo.Offset, lo.Timestamp)
	}
	if lo := c.listOffset("merged", 0, listMaxTimestamp); lo.Offset != 119 {
		t.Fatalf("ListOffsets max timestamp: offset %d; want 119", lo.Offset)
	}

	a2 := tc.agent("a2")
	waitFor(t, "a2 to see the segment", func() bool {
		pi, _ := a2.cache.PartitionIndex(tp)
		return len(pi.Segments) > 0
	})
	readAll(dialRaw(t, a2))
}

// DeleteRecords through a Kafka admin client moves the log start; a fetch below it is out of range,
// ListOffsets earliest answers it, and retention.ms set on the topic moves it past old records.
func TestDeleteRecordsAndRetention(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", fastMaintenance)
	c := ledTopicConn(t, a, "expiring")
	old := time.Now().Add(-time.Hour).UnixMilli()
	for i := range 10 {
		ts := []int64{old + int64(i), old + int64(i)}
		wantOK(t, "produce", c.produceOne("expiring", 0, valueBatch(-1, -1, -1, ts, "a", "b")).ErrorCode)
	}
	adm := kadm.NewClient(kgoClient(t, nil, a))
	ctx := testCtx(t)
	res, err := adm.DeleteRecords(ctx, kadm.Offsets{"expiring": {0: {At: 7}}})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := res.Lookup("expiring", 0)
	if r.Err != nil || r.LowWatermark != 7 {
		t.Fatalf("DeleteRecords to 7: low watermark %d, %v", r.LowWatermark, r.Err)
	}
	if lo := c.listOffset("expiring", 0, listEarliest); lo.Offset != 7 {
		t.Fatalf("earliest after DeleteRecords: %d, want 7", lo.Offset)
	}
	wantCode(t, "fetch below the log start", c.fetchOne("expiring", 0, 3, 1<<20).ErrorCode, kerr.OffsetOutOfRange)
	res, err = adm.DeleteRecords(ctx, kadm.Offsets{"expiring": {0: {At: 100}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := res.Lookup("expiring", 0); r.Err == nil {
		t.Fatal("DeleteRecords past the high watermark succeeded")
	}

	// A retention of a minute: every record is an hour old.
	if _, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: configRetentionMs, Value: new("60000")}}, "expiring"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retention to move the log start to the high watermark", func() bool {
		return c.listOffset("expiring", 0, listEarliest).Offset == 20
	})
	// Stamped now: a record of the default test timestamp (1970) would expire at the next pass.
	now := []int64{time.Now().UnixMilli()}
	wantOK(t, "produce after retention emptied the partition", c.produceOne("expiring", 0, valueBatch(-1, -1, -1, now, "c")).ErrorCode)
	sp := c.fetchOne("expiring", 0, 20, 1<<20)
	if recs := decodeRecords(t, sp); len(recs) != 1 || recs[0].Offset != 20 || string(recs[0].Value) != "c" {
		t.Fatalf("fetch after retention: %v", recordValues(recs))
	}
}

// An object written longer ago than half GC's grace period is not committed: GC could have deleted it.
func TestOldObjectIsNotCommitted(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	old := "seg/" + "01ARZ3NDEKTSV4RRFFQ69G5FAV" + "-a1" // a ULID of 2016
	if !a.tooOldToCommit(old, time.Now()) {
		t.Fatal("an object of 2016 is young enough to commit")
	}
	if a.tooOldToCommit(segstore.NewObjectKey("a1"), time.Now()) {
		t.Fatal("a new object is too old to commit")
	}
}

// getCounter counts the ranged GETs of an agent's store.
type getCounter struct {
	segstore.Store
	gets atomic.Int64
}

func (g *getCounter) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	g.gets.Add(1)
	return g.Store.GetRange(ctx, key, off, n)
}

// A maintenance pass reads each flush object once for the tail merges of all the partitions it holds
// batches of, not once per partition: a leader taking over the tails of 8 partitions written in 40
// flushes makes at most 40 GETs to merge them all (before, 320: one per partition per object).
func TestTailMergesReadEachObjectOnce(t *testing.T) {
	t.Parallel()
	const partitions, flushes = 8, 40
	tc := newTestCluster(t)
	counters := map[string]*getCounter{}
	var mu sync.Mutex
	tc.wrapStore = func(id string, s segstore.Store) segstore.Store {
		mu.Lock()
		defer mu.Unlock()
		counters[id] = &getCounter{Store: s}
		return counters[id]
	}
	a1 := tc.agent("a1", noMaintenance)
	createLedTopic(t, kgoClient(t, nil, a1), a1, "tails", partitions, nil)
	c := dialRaw(t, a1)
	for i := range flushes { // each acknowledged before the next: one flush object each, every partition in it
		parts := map[int32][]byte{}
		for p := range int32(partitions) {
			parts[p] = valueBatch(-1, -1, -1, nil, fmt.Sprint(i))
		}
		resp := c.roundTrip(produceReq("tails", -1, parts), produceVersion).(*kmsg.ProduceResponse)
		for _, p := range resp.Topics[0].Partitions {
			wantOK(t, "produce", p.ErrorCode)
		}
	}
	if err := a1.Shutdown(testCtx(t)); err != nil { // hands the partitions over
		t.Fatal(err)
	}
	a2 := tc.agent("a2", noMaintenance) // an empty read cache
	for p := range int32(partitions) {
		tp := topicTP(t, a2, "tails", p)
		waitFor(t, fmt.Sprintf("a2 to lead tails/%d", p), func() bool { return a2.lead.leaders.get(tp) != nil })
	}
	before := counters["a2"].gets.Load()
	a2.maintainer.Pass(testCtx(t), maintenanceConcurrency, a2.leads)
	gets := counters["a2"].gets.Load() - before
	for p := range int32(partitions) {
		pi, _ := a2.cache.PartitionIndex(topicTP(t, a2, "tails", p))
		if len(pi.Segments) != 1 || len(pi.Tail) != 0 {
			t.Fatalf("partition %d after the pass: %d segments, %d tail entries; want its tail merged", p, len(pi.Segments), len(pi.Tail))
		}
	}
	t.Logf("%d partitions' tails of %d flushes merged with %d GETs", partitions, flushes, gets)
	if gets > flushes {
		t.Errorf("the pass made %d GETs for %d flush objects", gets, flushes)
	}
}
