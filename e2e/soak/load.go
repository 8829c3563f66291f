package main

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// The load of issue 14: one franz-go producer (acks=all, idempotent: franz-go's defaults), no
// linger, records round-robin over the partitions, sent open loop: record n is due at n/rate seconds
// after the start, whatever the cluster answers, so that a slow cluster shows as a growing backlog
// and not as a lower offered rate.

// sendTick is how often the sender catches up with its schedule.
const sendTick = 5 * time.Millisecond

// producer sends the load and records every record in the ledger.
type producer struct {
	cl         *kgo.Client
	led        *ledger
	rate       int
	size       int
	partitions int32

	acked, failed atomic.Int64
	maxLag        atomic.Int64 // the most records the sender was behind its schedule (Produce blocked)
	errMu         sync.Mutex
	firstErr      error
}

func newProducer(brokers []string, topic string, led *ledger, rate, size int, partitions int32) (*producer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		// A minute of records may wait for acknowledgements before Produce blocks (and the schedule
		// slips, which maxLag shows).
		kgo.MaxBufferedRecords(max(rate*60, 10_000)))
	if err != nil {
		return nil, err
	}
	return &producer{cl: cl, led: led, rate: rate, size: size, partitions: partitions}, nil
}

// run sends on schedule until ctx is done, then waits (at most flushTimeout) for every record sent to
// be answered.
func (p *producer) run(ctx context.Context, flushTimeout time.Duration) {
	start := time.Now()
	var sent int64
	t := time.NewTicker(sendTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
			defer cancel()
			_ = p.cl.Flush(fctx)
			return
		case <-t.C:
		}
		due := int64(time.Since(start).Seconds() * float64(p.rate))
		if lag := due - sent; lag > p.maxLag.Load() {
			p.maxLag.Store(lag)
		}
		for ; sent < due && ctx.Err() == nil; sent++ {
			p.send(sent)
		}
	}
}

// send produces record n of the schedule; the records' own context is not the run's, so that ending
// the run does not fail the records in flight.
func (p *producer) send(n int64) {
	partition := int32(n % int64(p.partitions))
	now := time.Now()
	seq := p.led.add(partition, now)
	key, value := encodeRecord(seq, p.size)
	r := &kgo.Record{Key: key, Value: value, Partition: partition, Timestamp: now}
	p.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
		if err != nil {
			p.led.failed(seq)
			p.failed.Add(1)
			p.errMu.Lock()
			if p.firstErr == nil {
				p.firstErr = err
			}
			p.errMu.Unlock()
			return
		}
		p.led.acked(seq, r.Offset)
		p.acked.Add(1)
	})
}

func (p *producer) err() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.firstErr
}

func (p *producer) close() { p.cl.Close() }

// produceStats is the producer's account.
type produceStats struct {
	Sent     int64   `json:"sent"`
	Acked    int64   `json:"acked"`
	Failed   int64   `json:"failed"`
	Seconds  float64 `json:"seconds"`
	MaxLag   int64   `json:"max_schedule_lag_records"`
	FirstErr string  `json:"first_error,omitempty"`
}

func (p *producer) stats(led *ledger, elapsed time.Duration) produceStats {
	st := produceStats{Sent: int64(led.len()), Acked: p.acked.Load(), Failed: p.failed.Load(), Seconds: elapsed.Seconds(),
		MaxLag: p.maxLag.Load()}
	if err := p.err(); err != nil {
		st.FirstErr = err.Error()
	}
	return st
}

func (pr produceStats) print(w io.Writer, d time.Duration) {
	fmt.Fprintf(w, "produce: %s sent, %s acknowledged, %s failed, %s unanswered in %.0fs (%.0f acknowledged/s); "+
		"the sender was at most %s records behind its schedule\n", thousands(pr.Sent), thousands(pr.Acked), thousands(pr.Failed),
		thousands(pr.Sent-pr.Acked-pr.Failed), pr.Seconds, float64(pr.Acked)/d.Seconds(), thousands(pr.MaxLag))
	if pr.FirstErr != "" {
		fmt.Fprintf(w, "produce: first error: %s\n", pr.FirstErr)
	}
}
