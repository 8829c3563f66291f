package main

// The single-endpoint mode: one running Kafka-compatible endpoint, measured the way the single-node
// issue's figures are defined.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func runSingle(brokers, metricsURL, topic string, partitions int32, size int, d time.Duration, codec string, rate int) error {
	ctx := context.Background()
	codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "snappy": kgo.SnappyCompression(),
		"lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression(), "gzip": kgo.GzipCompression()}
	cc, ok := codecs[codec]
	if !ok {
		return fmt.Errorf("unknown compression %q", codec)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(1<<16), kgo.ProducerBatchCompression(cc))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
		return err
	}
	before, _ := scrape(metricsURL)
	// Random values, so that compression (when asked for) measures real work, not runs of zeros.
	pool := make([]byte, size*1024)
	for i := range pool {
		pool[i] = byte(rand.Uint32())
	}
	var mu sync.Mutex
	var lat []time.Duration
	var failed int
	start := time.Now()
	n := 0
	for time.Since(start) < d {
		if rate > 0 {
			// Open loop: each record has its own send time, so client-side queueing cannot hide latency.
			due := start.Add(time.Duration(n) * time.Second / time.Duration(rate))
			if wait := time.Until(due); wait > 0 {
				time.Sleep(wait)
			}
		}
		t0 := time.Now()
		off := (n % 1024) * size
		cl.Produce(ctx, &kgo.Record{Value: pool[off : off+size]}, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				return
			}
			lat = append(lat, time.Since(t0))
		})
		n++
	}
	if err := cl.Flush(ctx); err != nil {
		return err
	}
	elapsed := time.Since(start)
	after, _ := scrape(metricsURL)
	slices.Sort(lat)
	mib := float64(len(lat)*size) / (1 << 20) / elapsed.Seconds()
	fmt.Printf("produce: %d records (%d failed) of %d B to %d partitions in %.1fs: %.1f MiB/s, %.0f records/s\n",
		len(lat), failed, size, partitions, elapsed.Seconds(), mib, float64(len(lat))/elapsed.Seconds())
	fmt.Printf("produce latency: p50 %v p99 %v p99.9 %v\n", pct(lat, 0.5), pct(lat, 0.99), pct(lat, 0.999))
	if before != nil && after != nil {
		for _, m := range []string{`streamhouse_s3_requests_total{op="put",result="ok"}`, `streamhouse_etcd_txns_total{result="ok"}`} {
			fmt.Printf("%s: %.1f/s\n", m, (after[m]-before[m])/elapsed.Seconds())
		}
	}

	consumer, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return err
	}
	defer consumer.Close()
	start = time.Now()
	got := 0
	for got < len(lat) {
		fs := consumer.PollFetches(ctx)
		if errs := fs.Errors(); len(errs) > 0 {
			return fmt.Errorf("consume: %v", errs)
		}
		got += fs.NumRecords()
	}
	elapsed = time.Since(start)
	fmt.Printf("consume: %d records in %.1fs: %.1f MiB/s\n", got, elapsed.Seconds(), float64(got*size)/(1<<20)/elapsed.Seconds())
	return nil
}

func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))].Round(100 * time.Microsecond)
}

// scrape reads the endpoint's metrics (scrapeText); nothing when it has no metrics URL.
func scrape(url string) (map[string]float64, error) {
	if url == "" {
		return nil, nil
	}
	return scrapeText(url)
}
