package lifecycle

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/cleaner"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// hrec is one record of a test history: key "" for none, tomb for a null value.
type hrec struct {
	key   string
	value string
	tomb  bool
}

// keyedBatch builds a v2 batch of recs compressed with codec, from producer pid (-1: none) at seq.
func keyedBatch(t testing.TB, ts int64, codec int8, pid int64, seq int32, recs []hrec) []byte {
	t.Helper()
	var body []byte
	for i, h := range recs {
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i)}
		if h.key != "" {
			r.Key = []byte(h.key)
		}
		if !h.tomb {
			r.Value = []byte(h.value)
		}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		body = r.AppendTo(body)
	}
	z, err := cleaner.Compress(codec, body)
	if err != nil {
		t.Fatal(err)
	}
	b := kmsg.RecordBatch{Magic: 2, Attributes: int16(codec), LastOffsetDelta: int32(len(recs) - 1), FirstTimestamp: ts,
		MaxTimestamp: ts + int64(len(recs)-1), ProducerID: pid, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(recs)), Records: z}
	if pid >= 0 {
		b.ProducerEpoch, b.FirstSequence = 0, seq
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
	return raw
}

// produceKeyed commits one batch of recs at next and returns the offset after it.
func (c *cluster) produceKeyed(t testing.TB, next int64, ts int64, codec int8, pid int64, seq int32, recs []hrec) int64 {
	t.Helper()
	return c.commitKeyed(t, next, ts, pid, seq, len(recs), false, keyedBatch(t, ts, codec, pid, seq, recs))
}

// commitKeyed commits data, a batch of n records of producer pid (transactional or not), at next and
// returns the offset after it.
func (c *cluster) commitKeyed(t testing.TB, next, ts, pid int64, seq int32, n int, txn bool, data []byte) int64 {
	t.Helper()
	ctx := context.Background()
	obj, extents := segstore.AppendObject(nil, []segstore.Chunk{{TopicID: c.lead.TP.Topic, Partition: 0, Data: data}})
	key := segstore.NewObjectKey("a1")
	if err := c.store.Put(ctx, key, obj); err != nil {
		t.Fatal(err)
	}
	x := extents[0]
	last := next + int64(n) - 1
	e := coord.IndexEntry{BaseOffset: next, LastOffset: last, Epoch: int64(c.epoch), MaxTimestamp: ts + int64(n-1),
		Extents: []coord.Extent{{Object: key, Pos: x.Pos, Len: x.Len, CRC: x.CRC}}}
	cm := coord.Commit{TP: c.lead.TP, Epoch: c.lead.Epoch, Entry: e}
	if pid >= 0 {
		cm.Batches = []coord.ProducerBatch{{ID: pid, FirstSeq: seq, LastSeq: seq + int32(n) - 1, FirstOffset: next, LastOffset: last,
			Transactional: txn}}
	}
	if err := c.sess.Commit(ctx, []coord.Commit{cm})[0]; err != nil {
		t.Fatal(err)
	}
	c.sync(t)
	return last + 1
}

// readRec is a record as read back, and the batch it came in.
type readRec struct {
	hrec
	batchBase int64
}

// readBatches reads every batch of the partition as a consumer would, checking every CRC, and returns
// the records by offset and the batches' base offsets with their producer ids. It fails on an offset
// read twice or batches out of order.
func (c *cluster) readBatches(t *testing.T) (map[int64]readRec, map[int64]int64) {
	t.Helper()
	ctx := context.Background()
	recs := map[int64]readRec{}
	batches := map[int64]int64{}
	ex := storeExtents{c.store}
	pi, _ := c.cache.PartitionIndex(c.lead.TP)
	prev := int64(-1)
	for _, e := range c.cache.Entries(c.lead.TP, pi.LogStart, math.MaxInt64) {
		var raw []byte
		if e.Segment != nil {
			blocks, err := ReadFooter(ctx, ex, e.Segment)
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range blocks {
				data, err := c.store.GetRange(ctx, e.Segment.Object, b.Pos, int64(b.Len))
				if err != nil {
					t.Fatal(err)
				}
				if err := segstore.VerifyBlock(data, b); err != nil {
					t.Fatal(err)
				}
				raw = append(raw, data...)
			}
		} else if e.Marker != nil {
			raw = testMarker(nil, e) // a marker in the tail: its control batch is made when it is read
		} else {
			base := e.BaseOffset
			for _, x := range e.Extents {
				data, err := ex.Extent(ctx, x)
				if err != nil {
					t.Fatal(err)
				}
				if raw, base, err = patch(raw, data, base, int32(e.Epoch)); err != nil {
					t.Fatal(err)
				}
			}
		}
		err := cleaner.Batches(raw, func(b cleaner.Batch) error {
			if b.BaseOffset <= prev {
				return fmt.Errorf("batch at %d after offset %d", b.BaseOffset, prev)
			}
			prev = b.LastOffset()
			batches[b.BaseOffset] = b.ProducerID
			return cleaner.EachRecord(b, 1<<20, func(o int64, r cleaner.Record) error {
				if _, dup := recs[o]; dup {
					return fmt.Errorf("offset %d read twice", o)
				}
				if o > b.LastOffset() {
					return fmt.Errorf("record at %d past its batch's last offset %d", o, b.LastOffset())
				}
				rr := readRec{batchBase: b.BaseOffset, hrec: hrec{key: string(r.Key), tomb: r.NullValue}}
				if !r.NullValue {
					v := r.Raw // the value follows the key; decode it with kmsg for simplicity
					var kr kmsg.Record
					if err := kr.ReadFrom(v); err != nil {
						return err
					}
					rr.value = string(kr.Value)
				}
				recs[o] = rr
				return nil
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return recs, batches
}

// history is what a test wrote: every record by offset, and each producer's last batch.
type history struct {
	recs     map[int64]hrec
	lastOf   map[string]int64 // key: offset of its latest record
	lastPID  map[int64]int64  // producer id: base offset of its last batch
	next     int64
	segments map[int64]int64 // segment base -> last offset, as first merged
}

func newHistory() *history {
	return &history{recs: map[int64]hrec{}, lastOf: map[string]int64{}, lastPID: map[int64]int64{}}
}

// write produces a random batch: 1-5 records of keys k0..k<keys-1>, some tombstones, a random codec,
// some from producers 1-3.
func (h *history) write(t *testing.T, c *cluster, rng *rand.Rand, keys int, ts int64, seqs map[int64]int32) {
	n := 1 + rng.IntN(5)
	recs := make([]hrec, n)
	for i := range recs {
		k := fmt.Sprintf("k%d", rng.IntN(keys))
		recs[i] = hrec{key: k, value: fmt.Sprintf("v%d", h.next+int64(i)), tomb: rng.IntN(7) == 0}
	}
	pid := int64(-1)
	if rng.IntN(3) == 0 {
		pid = 1 + rng.Int64N(3)
	}
	seq := seqs[pid]
	base := h.next
	h.next = c.produceKeyed(t, h.next, ts, int8(rng.IntN(5)), pid, seq, recs)
	if pid >= 0 {
		seqs[pid] = seq + int32(n)
		h.lastPID[pid] = base
	}
	for i, r := range recs {
		h.recs[base+int64(i)] = r
		h.lastOf[r.key] = base + int64(i)
	}
}

// check verifies the partition against the history: every record read is the one written at its
// offset; the latest record of every key is there (tombstones unless dropped is allowed); every
// producer's last batch is there; when final, nothing but the latest record of each key is left.
func (h *history) check(t *testing.T, c *cluster, final, tombstonesGone bool) {
	t.Helper()
	got, batches := c.readBatches(t)
	for o, r := range got {
		w, ok := h.recs[o]
		if !ok || w.key != r.key || w.tomb != r.tomb || (!w.tomb && w.value != r.value) {
			t.Fatalf("offset %d holds %+v, written %+v", o, r.hrec, w)
		}
		if final && h.lastOf[r.key] != o {
			t.Fatalf("offset %d: key %s's record is not its latest (%d) after a full clean", o, r.key, h.lastOf[r.key])
		}
		if tombstonesGone && r.tomb {
			t.Fatalf("offset %d: tombstone of %s kept past delete.retention.ms", o, r.key)
		}
	}
	for k, o := range h.lastOf {
		_, ok := got[o]
		if !ok && !(h.recs[o].tomb && tombstonesGone) {
			t.Fatalf("key %s: its latest record, at %d (tombstone %v), is gone", k, o, h.recs[o].tomb)
		}
	}
	for pid, base := range h.lastPID {
		if batches[base] != pid {
			t.Fatalf("producer %d: its last batch, at %d, is gone", pid, base)
		}
	}
	pi, _ := c.cache.PartitionIndex(c.lead.TP)
	if pi.HighWatermark != h.next {
		t.Fatalf("high watermark %d, want %d", pi.HighWatermark, h.next)
	}
}

// TestCleanRandomHistories writes random histories of keys, tombstones and idempotent producers in
// every codec to a compacted partition, maintaining it as it goes (tail merges, level merges, cleans
// with a key map sometimes too small for one pass), and checks after each step that every record read
// is the one written at its offset, none twice, every key's latest record and every producer's last
// batch kept, CRCs valid; then that a full clean leaves only each key's latest record, tombstones
// included while delete.retention.ms has not passed, and none after.
func TestCleanRandomHistories(t *testing.T) {
	t.Parallel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(seed, 15))
			c := newCluster(t)
			ctx := context.Background()
			now := time.UnixMilli(1_700_000_000_000)
			comp := Compaction{MinDirtyRatio: []float64{0, 0.3, 0.5}[rng.IntN(3)], DeleteRetention: time.Hour, MaxLag: -1}
			p := DefaultPolicy()
			p.TailEntries, p.FanIn, p.Compaction = 1+rng.IntN(6), 2+rng.IntN(4), &comp
			mem := int64(cleaner.EntryBytes * (4 + rng.IntN(30))) // often fewer keys than the history has
			if seed == 0 {
				mem = cleaner.EntryBytes // fewer keys than one batch has: the first batch is taken whole
			}
			m := NewMaintainer(MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
				Patch: patch, Now: func() time.Time { return now }, CleanerMemory: mem}, c.cache, storeExtents{c.store}, c.store)
			h := newHistory()
			seqs := map[int64]int32{}
			keys := 5 + rng.IntN(40)
			for range 120 {
				h.write(t, c, rng, keys, now.UnixMilli(), seqs)
				now = now.Add(time.Second)
				if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
					t.Fatal(err)
				}
				h.check(t, c, false, false)
			}
			// Everything into segments and clean: only the latest record of each key is left.
			p.TailEntries, comp.MinDirtyRatio = 1, 0
			for range 50 {
				if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
					t.Fatal(err)
				}
			}
			h.check(t, c, true, false)
			// Past delete.retention.ms, a clean is due without new records, and drops the tombstones.
			now = now.Add(2 * time.Hour)
			lastBase := h.next
			for range 50 {
				if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
					t.Fatal(err)
				}
			}
			h.checkTombstonesGone(t, c, lastBase)
		})
	}
}

// checkTombstonesGone checks that no tombstone written before from is left, and that every key's
// latest record that is not a tombstone is.
func (h *history) checkTombstonesGone(t *testing.T, c *cluster, from int64) {
	t.Helper()
	got, _ := c.readBatches(t)
	for o, r := range got {
		if r.tomb && o < from {
			t.Fatalf("offset %d: tombstone of %s kept past delete.retention.ms", o, r.key)
		}
	}
	for k, o := range h.lastOf {
		if _, ok := got[o]; !ok && !h.recs[o].tomb {
			t.Fatalf("key %s: its latest record, at %d, is gone", k, o)
		}
	}
}

// failingReplacer commits the first n entries of a clean, then fails as a crash or a lost leadership
// would leave it.
type failingReplacer struct {
	*coord.Session
	n int
}

var errCrash = errors.New("crash")

func (f *failingReplacer) ReplaceSegments(ctx context.Context, tp coord.TP, epoch int64, segs []coord.IndexEntry) (int64, error) {
	if f.n > 0 {
		k := min(f.n, len(segs))
		if _, err := f.Session.ReplaceSegments(ctx, tp, epoch, segs[:k]); err != nil {
			return 0, err
		}
	}
	return 0, errCrash
}

// TestCleanCrashMidCommit interrupts cleans before their commit and after part of it: the partition
// stays readable with every key's latest record, nothing duplicated, and a clean run again (a new
// leader's) completes it.
func TestCleanCrashMidCommit(t *testing.T) {
	t.Parallel()
	for _, n := range []int{0, 1, 2} {
		t.Run(fmt.Sprint("committed", n), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(n), 7))
			c := newCluster(t)
			ctx := context.Background()
			now := time.UnixMilli(1_700_000_000_000)
			comp := Compaction{MinDirtyRatio: 2, DeleteRetention: time.Hour, MaxLag: -1} // no clean yet
			p := DefaultPolicy()
			p.TailEntries, p.FanIn, p.Compaction = 2, 100, &comp
			cfg := MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
				Patch: patch, Now: func() time.Time { return now }}
			m := NewMaintainer(cfg, c.cache, storeExtents{c.store}, c.store)
			h := newHistory()
			seqs := map[int64]int32{}
			for range 40 {
				h.write(t, c, rng, 6, now.UnixMilli(), seqs)
				if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
					t.Fatal(err)
				}
			}
			pi, _ := c.cache.PartitionIndex(c.lead.TP)
			if len(pi.Segments) < 3 {
				t.Fatalf("%d segments, want several", len(pi.Segments))
			}
			comp.MinDirtyRatio = 0
			if _, err := m.Maintain(ctx, c.lead, &failingReplacer{Session: c.sess, n: n}); !errors.Is(err, errCrash) {
				t.Fatalf("interrupted clean: %v", err)
			}
			c.sync(t)
			h.check(t, c, false, false)
			m2 := NewMaintainer(cfg, c.cache, storeExtents{c.store}, c.store)
			for range 5 {
				if _, err := m2.Maintain(ctx, c.lead, c.sess); err != nil {
					t.Fatal(err)
				}
			}
			h.check(t, c, true, false)
		})
	}
}
