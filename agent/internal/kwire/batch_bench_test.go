package kwire

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// BenchmarkValidateBatch measures what validating a produce batch costs, per codec, in MiB/s of
// records validated (their uncompressed bytes) on one core; "frame" is the check before this work
// (length and CRC), which every codec's figure includes.
//
//	go test ./agent -run '^$' -bench ValidateBatch -benchmem
func BenchmarkValidateBatch(b *testing.B) {
	recs, n := benchRecords(256, 1024)
	for _, name := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		codec := kwiretest.Codecs[name]
		h := kwiretest.PlainSpec(n)
		h.Codec = codec
		batch := kwiretest.Build(h, kwiretest.Compress(b, codec, recs))
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(recs)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ParseProduceBatch(batch, testDecompressLimit); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(recs))/float64(len(batch)-BatchHeaderLen), "ratio")
		})
	}
	batch := kwiretest.Build(kwiretest.PlainSpec(n), recs)
	b.Run("frame", func(b *testing.B) {
		b.SetBytes(int64(len(recs)))
		for b.Loop() {
			if err := CheckBatchFrame(batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// benchRecords encodes n records of about size bytes of text-like values (words from a small
// vocabulary, so that they compress as logs and JSON do, some 3-5x).
func benchRecords(n, size int) ([]byte, int) {
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []byte
	for i := range n {
		var v []byte
		for len(v) < size {
			v = fmt.Appendf(v, "%s=%d ", words[rng.IntN(len(words))], rng.IntN(100000))
		}
		recs = append(recs, kwiretest.Record(int32(i), int64(i), v[:size])...)
	}
	return recs, n
}

var words = []string{"user", "order", "amount", "status", "region", "latency_ms", "path", "method", "code", "session",
	"item", "price", "count", "host", "trace", "span", "level", "service", "zone", "retry"}
