package workload

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// producer sends one record every interval, to each partition in turn, and records every send.
type producer struct {
	w       *Workload
	name    string
	cl      *kgo.Client
	timeout time.Duration // per record; 0: none

	stopLoop   context.CancelFunc
	loopDone   chan struct{}
	records    context.Context // of every record: cancelled when the flush at stop gives up
	cancelRecs context.CancelFunc
	inflight   sync.WaitGroup

	mu   sync.Mutex
	errs map[string]int
}

func (w *Workload) startProducer(name string, interval, timeout time.Duration, offset int) (*producer, error) {
	// Idempotent with acks=all, franz-go's defaults; records go to the partition they name.
	cl, err := w.client(name, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		return nil, err
	}
	p := &producer{w: w, name: name, cl: cl, timeout: timeout, loopDone: make(chan struct{}), errs: map[string]int{}}
	p.records, p.cancelRecs = context.WithCancel(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	p.stopLoop = cancel
	go p.loop(ctx, interval, offset)
	return p, nil
}

func (p *producer) loop(ctx context.Context, interval time.Duration, first int) {
	defer close(p.loopDone)
	t := time.NewTicker(interval)
	defer t.Stop()
	tps := p.w.tps
	for seq := 0; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tp := tps[(first+seq)%len(tps)]
		p.send(tp, fmt.Sprintf("%s/%d/%s/%d", tp.Topic, tp.Partition, p.name, seq))
	}
}

func (p *producer) send(tp history.TP, value string) {
	ctx, cancel := p.records, context.CancelFunc(func() {})
	if p.timeout > 0 {
		ctx, cancel = context.WithTimeout(p.records, p.timeout)
	}
	start := time.Now()
	p.inflight.Add(1)
	p.cl.Produce(ctx, &kgo.Record{Topic: tp.Topic, Partition: tp.Partition, Value: []byte(value)}, func(r *kgo.Record, err error) {
		defer p.inflight.Done()
		cancel()
		e := history.Event{Type: history.Send, Proc: p.name, Start: start, End: time.Now(), Outcome: sendOutcome(err),
			Topic: tp.Topic, Partition: tp.Partition, Value: value}
		if err == nil {
			e.Offset = r.Offset
			p.w.acks.ack(tp, e.End)
		} else {
			e.Err = err.Error()
			p.mu.Lock()
			p.errs[errorKind(err)]++
			p.mu.Unlock()
		}
		p.w.cfg.Recorder.Add(e)
	})
}

// sendOutcome classifies a send's error. franz-go's idempotent producer fails a record on a timeout,
// a cancelled context or its retry limit only when no request holding it may have been written
// (it never fails a batch it is unsure of); and a broker rejecting a record for what it is rejects
// every attempt. Anything else (a closed client, a sequence error) may or may not have been written.
func sendOutcome(err error) history.Outcome {
	switch {
	case err == nil:
		return history.OK
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, kgo.ErrRecordTimeout), errors.Is(err, kgo.ErrRecordRetries),
		errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge),
		errors.Is(err, kerr.InvalidRecord), errors.Is(err, kerr.CorruptMessage),
		errors.Is(err, kerr.TopicAuthorizationFailed), errors.Is(err, kerr.InvalidTopicException):
		return history.Failed
	}
	return history.Indeterminate
}

func errorKind(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "record timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	return err.Error()
}

// stop stops sending, waits up to flushTimeout for what is buffered, then gives up on the rest and
// closes the client; every send ends, one way or another, before stop returns.
func (p *producer) stop() error {
	p.stopLoop()
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	var err error
	if ferr := p.cl.Flush(ctx); ferr != nil {
		err = fmt.Errorf("%s: %d records still unacknowledged after %v", p.name, p.cl.BufferedProduceRecords(), flushTimeout)
	}
	p.cancelRecs()
	<-p.loopDone
	p.cl.Close()
	p.inflight.Wait()
	return err
}
