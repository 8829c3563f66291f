package segstore

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkS3Put measures the S3 client's own cost of a Put (signing, hashing, sending), against an
// endpoint on loopback that reads the body and keeps nothing, so that no server work is counted.
//
//	go test ./segstore -run '^$' -bench S3Put -benchmem
func BenchmarkS3Put(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("ETag", `"0"`)
	}))
	b.Cleanup(srv.Close)
	s, err := NewS3(context.Background(), S3Config{Endpoint: srv.URL, Bucket: testBucket, PathStyle: true,
		AccessKeyID: "any", SecretAccessKey: "thing"})
	if err != nil {
		b.Fatal(err)
	}
	obj := make([]byte, 4<<20) // a full flush at the default --flush-bytes
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Put(context.Background(), fmt.Sprintf("seg/%d", i), obj); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkS3ServerPut measures the embedded S3 endpoint (S3Server) storing 4 MiB objects sent by
// the S3 client: one Put at a time (serial), and 2×GOMAXPROCS at once (parallel), where the
// endpoint's CPU is the limit. Client and server share the process, so cpu-ms/op counts both;
// BenchmarkS3Put is the client's share.
//
//	go test ./segstore -run '^$' -bench S3ServerPut -benchtime 50x
func BenchmarkS3ServerPut(b *testing.B) {
	obj := make([]byte, 4<<20)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(obj) // incompressible, as segment objects mostly are
	start := func(b *testing.B) *S3 {
		s := newS3Store(b, newS3Server(b, b.TempDir()).Endpoint(), testBucket)
		b.SetBytes(int64(len(obj)))
		b.ReportAllocs()
		return s
	}
	b.Run("serial", func(b *testing.B) {
		s := start(b)
		cpu := startCPUMeter()
		i := 0
		for b.Loop() {
			if err := s.Put(context.Background(), fmt.Sprintf("seg/%d", i), obj); err != nil {
				b.Fatal(err)
			}
			i++
		}
		cpu.report(b)
	})
	b.Run("parallel", func(b *testing.B) {
		s := start(b)
		var next atomic.Int64
		b.SetParallelism(2)
		cpu := startCPUMeter()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Put(context.Background(), fmt.Sprintf("seg/%d", next.Add(1)), obj); err != nil {
					b.Error(err)
					return
				}
			}
		})
		cpu.report(b)
	})
}

// cpuMeter reports the process's CPU time per benchmark iteration, where the platform tells it:
// on a shared machine it varies far less than the wall-clock MB/s.
type cpuMeter struct {
	start time.Duration
	ok    bool
}

func startCPUMeter() cpuMeter {
	d, ok := processCPU()
	return cpuMeter{d, ok}
}

func (m cpuMeter) report(b *testing.B) {
	if d, ok := processCPU(); ok && m.ok && b.N > 0 {
		b.ReportMetric(float64(d-m.start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}
