package lifecycle

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/cleaner"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// countingStore counts the object store operations a clean makes.
type countingStore struct {
	*segstore.Memory
	gets, getBytes, puts, putBytes atomic.Int64
}

func (s *countingStore) GetRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	s.gets.Add(1)
	s.getBytes.Add(n)
	return s.Memory.GetRange(ctx, key, off, n)
}

func (s *countingStore) Put(ctx context.Context, key string, parts ...[]byte) error {
	s.puts.Add(1)
	for _, p := range parts {
		s.putBytes.Add(int64(len(p)))
	}
	return s.Memory.Put(ctx, key, parts...)
}

// countingWriter counts a clean's etcd Txns.
type countingWriter struct {
	*coord.Session
	txns, puts int
}

func (w *countingWriter) ReplaceSegments(ctx context.Context, tp coord.TP, epoch int64, segs []coord.IndexEntry) (int64, error) {
	w.txns++
	w.puts += len(segs)
	return w.Session.ReplaceSegments(ctx, tp, epoch, segs)
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkClean measures one clean of a partition of 100,000 records of 20,000 keys (200-byte values,
// in 100 batches of 1,000, merged into level-1 segments), every record dirty: throughput in MiB of
// batches read per second and CPU-seconds per GiB (the process's, embedded etcd included), and the S3
// and etcd operations it costs. Run it with -benchtime 1x: each iteration builds its history anew.
func BenchmarkClean(b *testing.B) {
	for _, codec := range []int8{cleaner.CodecNone, cleaner.CodecZstd} {
		b.Run(fmt.Sprint("codec", codec), func(b *testing.B) {
			for range b.N {
				benchClean(b, codec)
			}
		})
	}
}

func benchClean(b *testing.B, codec int8) {
	b.StopTimer()
	c := newCluster(b)
	store := &countingStore{Memory: c.store}
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	comp := Compaction{MinDirtyRatio: 2, DeleteRetention: time.Hour, MaxLag: -1}
	p := DefaultPolicy()
	p.TailEntries, p.FanIn, p.MergeInput, p.Compaction = 10, 1000, 64<<20, &comp
	cfg := MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
		Patch: patch, Now: func() time.Time { return now }}
	m := NewMaintainer(cfg, c.cache, storeExtents{store}, store)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := "abcdefghijklmnopqrstuvwxyz0123456789"
	var next int64
	for range 100 {
		recs := make([]hrec, 1000)
		for i := range recs {
			v := make([]byte, 200) // about as compressible as text
			for j := range v {
				v[j] = alphabet[rng.IntN(len(alphabet))]
			}
			recs[i] = hrec{key: fmt.Sprintf("key-%05d", rng.IntN(20000)), value: string(v)}
		}
		next = c.produceKeyed(b, next, now.UnixMilli(), codec, -1, 0, recs)
		if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
			b.Fatal(err)
		}
	}
	pi, _ := c.cache.PartitionIndex(c.lead.TP)
	var bytes int64
	for _, s := range pi.Segments {
		bytes += s.Bytes
	}
	comp.MinDirtyRatio = 0
	store.gets.Store(0)
	store.getBytes.Store(0)
	store.puts.Store(0)
	store.putBytes.Store(0)
	w := &countingWriter{Session: c.sess}
	cpu0, t0 := cpuTime(), time.Now()
	b.StartTimer()
	s := Next(pi, p, now)
	if s.Kind != StepClean {
		b.Fatalf("step %v, want a clean", s.Kind)
	}
	if _, err := m.clean(ctx, c.lead, w, s); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	wall, cpu := time.Since(t0), cpuTime()-cpu0
	gib := float64(bytes) / (1 << 30)
	b.ReportMetric(float64(bytes)/(1<<20)/wall.Seconds(), "MiB/s")
	b.ReportMetric(cpu.Seconds()/gib, "cpu-s/GiB")
	b.ReportMetric(float64(store.gets.Load()), "GETs")
	b.ReportMetric(float64(store.puts.Load()), "PUTs")
	b.ReportMetric(float64(w.txns), "etcd-txns")
	b.Logf("%d segments, %.1f MiB of batches: %d GETs (%.1f MiB), %d PUTs (%.1f MiB), %d etcd Txns putting %d keys, %v wall, %v CPU",
		len(pi.Segments), float64(bytes)/(1<<20), store.gets.Load(), float64(store.getBytes.Load())/(1<<20),
		store.puts.Load(), float64(store.putBytes.Load())/(1<<20), w.txns, w.puts, wall, cpu)
}
