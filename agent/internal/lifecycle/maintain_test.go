package lifecycle

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// batch builds a v2 record batch of the values, timestamps from ts, as a producer sends it (base
// offset 0).
func batch(ts int64, values ...string) []byte {
	b := kmsg.RecordBatch{Magic: 2, LastOffsetDelta: int32(len(values) - 1), FirstTimestamp: ts,
		MaxTimestamp: ts + int64(len(values)-1), ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: int32(len(values))}
	for i, v := range values {
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i), Value: []byte(v)}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		b.Records = r.AppendTo(b.Records)
	}
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], castagnoli))
	return raw
}

// patch is the agent's batch patcher in miniature: consecutive offsets from base, the leader epoch.
func patch(dst, src []byte, base int64, epoch int32) ([]byte, int64, error) {
	spans, err := segstore.BatchSpans(src)
	if err != nil {
		return nil, 0, err
	}
	for _, s := range spans {
		start := len(dst)
		dst = append(dst, src[:s.Len]...)
		binary.BigEndian.PutUint64(dst[start:], uint64(base))
		binary.BigEndian.PutUint32(dst[start+12:], uint32(epoch))
		base += s.LastOffset - s.FirstOffset + 1
		src = src[s.Len:]
	}
	return dst, base, nil
}

// storeExtents reads extents straight from the store, checking their CRC, as the agent's cache does.
type storeExtents struct{ s segstore.Reader }

func (r storeExtents) Extent(ctx context.Context, x coord.Extent) ([]byte, error) {
	b, err := r.s.GetRange(ctx, x.Object, x.Pos, int64(x.Len))
	if err != nil {
		return nil, err
	}
	return b, segstore.VerifyExtent(b, x.CRC)
}

func (r storeExtents) ReadAll(ctx context.Context, xs []coord.Extent) ([][]byte, error) {
	out := make([][]byte, len(xs))
	for i, x := range xs {
		var err error
		if out[i], err = r.Extent(ctx, x); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// cluster is an embedded etcd with a cache and a session leading one partition.
type cluster struct {
	client *coord.Client
	cache  *coord.Cache
	sess   *coord.Session
	store  *segstore.Memory
	topic  coord.Topic
	lead   Lead
	epoch  int32
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e, err := coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := coord.Connect(ctx, coord.Config{Endpoints: e.Endpoints(), Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	k := c.NewCache(nil)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = k.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	<-k.Ready()
	s, err := c.Register(ctx, coord.AgentInfo{ID: "a1", Addr: "127.0.0.1:1"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	top, err := c.CreateTopic(ctx, coord.Topic{Name: "t", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.Acquire(ctx, top.TP(0), coord.EpochHint{})
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{client: c, cache: k, sess: s, store: segstore.NewMemory(), topic: top, epoch: l.Epoch,
		lead: Lead{TP: top.TP(0), Topic: top, Epoch: l.Rev}}
}

// produce writes a flush object holding one batch of n records for the partition and commits it.
func (c *cluster) produce(t *testing.T, next int64, n int, ts int64) int64 {
	t.Helper()
	ctx := context.Background()
	vals := make([]string, n)
	for i := range vals {
		vals[i] = fmt.Sprintf("v%d", next+int64(i))
	}
	data := batch(ts, vals...)
	obj, extents := segstore.AppendObject(nil, []segstore.Chunk{{TopicID: c.lead.TP.Topic, Partition: 0, Data: data}})
	key := segstore.NewObjectKey("a1")
	if err := c.store.Put(ctx, key, obj); err != nil {
		t.Fatal(err)
	}
	x := extents[0]
	e := coord.IndexEntry{BaseOffset: next, LastOffset: next + int64(n) - 1, Epoch: int64(c.epoch), MaxTimestamp: ts + int64(n-1),
		Extents: []coord.Extent{{Object: key, Pos: x.Pos, Len: x.Len, CRC: x.CRC}}}
	if err := c.sess.Commit(ctx, []coord.Commit{{TP: c.lead.TP, Epoch: c.lead.Epoch, Entry: e}})[0]; err != nil {
		t.Fatal(err)
	}
	c.sync(t)
	return next + int64(n)
}

func (c *cluster) sync(t testing.TB) {
	t.Helper()
	rev, err := c.client.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cache.WaitRevision(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every record of the partition from the view's entries and the objects, as a consumer
// would, and returns its values by offset.
func (c *cluster) readAll(t *testing.T) map[int64]string {
	t.Helper()
	ctx := context.Background()
	out := map[int64]string{}
	ex := storeExtents{c.store}
	pi, _ := c.cache.PartitionIndex(c.lead.TP)
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
		for len(raw) > 0 {
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(raw); err != nil {
				t.Fatal(err)
			}
			recs := rb.Records
			for range rb.NumRecords {
				var r kmsg.Record
				if err := r.ReadFrom(recs); err != nil {
					t.Fatal(err)
				}
				n := len(r.AppendTo(nil))
				recs = recs[n:]
				off := rb.FirstOffset + int64(r.OffsetDelta)
				if _, dup := out[off]; dup {
					t.Fatalf("offset %d read twice", off)
				}
				out[off] = string(r.Value)
			}
			raw = raw[12+int(rb.Length):]
		}
	}
	return out
}

// A partition's tail is merged into segments and the segments into larger ones, each record staying at
// its offset; retention and DeleteRecords move the log start; GC then deletes the objects nothing
// references any more, and only those.
func TestMaintainMergesRetainsAndCollects(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	p := DefaultPolicy()
	p.TailEntries, p.FanIn = 8, 4
	m := NewMaintainer(MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
		Patch: patch, Now: func() time.Time { return now }}, c.cache, storeExtents{c.store}, c.store)

	var next int64
	for i := range 64 {
		next = c.produce(t, next, 10, now.UnixMilli()-int64(64-i)*60_000) // a minute apart, the last one a minute ago
		if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
			t.Fatal(err)
		}
	}
	pi, _ := c.cache.PartitionIndex(c.lead.TP)
	levels := map[int]int{}
	for _, s := range pi.Segments {
		levels[s.Segment.Level]++
	}
	if len(pi.Tail) != 0 || levels[1] != 0 || levels[2] != 2 || pi.HighWatermark != 640 {
		t.Fatalf("after 64 flushes: tail %d, segments by level %v, hwm %d; want 2 of level 2 (8 of level 1 merged 4 at a time)", len(pi.Tail), levels, pi.HighWatermark)
	}
	got := c.readAll(t)
	for o := range int64(640) {
		if got[o] != fmt.Sprintf("v%d", o) {
			t.Fatalf("offset %d holds %q", o, got[o])
		}
	}

	// Retention of 30 minutes: the records older go, whole segments at a time.
	p.RetentionTime = 30 * time.Minute
	if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
		t.Fatal(err)
	}
	pi, _ = c.cache.PartitionIndex(c.lead.TP)
	if pi.LogStart == 0 || pi.LogStart > 340 {
		t.Fatalf("log start %d after 30 minutes' retention over records a minute apart, want in (0, 340]", pi.LogStart)
	}
	// DeleteRecords moves it further, to any offset.
	start, err := m.DeleteRecords(ctx, c.lead, c.sess, 600)
	if err != nil || start != 600 {
		t.Fatalf("DeleteRecords(600) = %d, %v", start, err)
	}
	if _, err := m.DeleteRecords(ctx, c.lead, c.sess, 641); err == nil {
		t.Fatal("DeleteRecords past the high watermark succeeded")
	}
	got = c.readAll(t)
	if got[600] != "v600" || got[639] != "v639" {
		t.Fatalf("after DeleteRecords: %q at 600, %q at 639", got[600], got[639])
	}

	// GC: the flush objects and the merged segments are garbage; what the view references is kept.
	gc := NewGC(GCConfig{Grace: time.Minute, ReadGrace: time.Minute, Now: func() time.Time { return time.Now().Add(time.Hour) }},
		c.store, c.cache, c.client)
	if _, err := gc.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	gc.cfg.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	res, err := gc.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	objs, _ := c.store.ListObjects(ctx, "")
	refs := c.cache.ReferencedObjects()
	if len(objs) != len(refs) || res.Deleted == 0 {
		t.Fatalf("after GC: %d objects, %d referenced, %d deleted", len(objs), len(refs), res.Deleted)
	}
	if got := c.readAll(t); got[600] != "v600" || got[639] != "v639" {
		t.Fatalf("after GC: %q at 600, %q at 639", got[600], got[639])
	}
	if dead := c.cache.DeadRecords(); len(dead) != 0 {
		t.Fatalf("dead records left after GC: %v", dead)
	}
}

// While the agent's produce path is saturated (Busy), a tail due only by its entry count waits until it
// holds BusyTailFactor times as many entries, and is then merged whole; once the agent is not busy any
// more, the usual trigger applies again.
func TestBusyDefersCountTriggeredTailMerges(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ctx := context.Background()
	now := time.Now()
	p := DefaultPolicy()
	p.TailEntries = 4
	var busy atomic.Bool
	busy.Store(true)
	m := NewMaintainer(MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
		Patch: patch, Busy: busy.Load}, c.cache, storeExtents{c.store}, c.store)
	shape := func() (tail, segs int) {
		pi, _ := c.cache.PartitionIndex(c.lead.TP)
		return len(pi.Tail), len(pi.Segments)
	}

	var next int64
	for i := range p.TailEntries*BusyTailFactor - 1 {
		next = c.produce(t, next, 10, now.UnixMilli())
		if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
			t.Fatal(err)
		}
		if tail, segs := shape(); tail != i+1 || segs != 0 {
			t.Fatalf("busy, after %d flushes: tail %d, %d segments; want no merge before %d entries", i+1, tail, segs, p.TailEntries*BusyTailFactor)
		}
	}
	next = c.produce(t, next, 10, now.UnixMilli())
	if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
		t.Fatal(err)
	}
	if tail, segs := shape(); tail != 0 || segs != 1 {
		t.Fatalf("busy, at %d entries: tail %d, %d segments; want the whole tail merged into one", p.TailEntries*BusyTailFactor, tail, segs)
	}

	busy.Store(false)
	for range p.TailEntries {
		next = c.produce(t, next, 10, now.UnixMilli())
	}
	if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
		t.Fatal(err)
	}
	if tail, segs := shape(); tail != 0 || segs != 2 {
		t.Fatalf("not busy, at %d entries: tail %d, %d segments; want it merged", p.TailEntries, tail, segs)
	}
	if got := c.readAll(t); len(got) != int(next) {
		t.Fatalf("read %d records, want %d", len(got), next)
	}
}
