package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/internal/progress"
)

// produceDeliveryTimeout bounds how long one record may wait for its acknowledgement, retries included.
const produceDeliveryTimeout = 30 * time.Second

func (c *cli) produce(args []string) error {
	fs := c.newFlagSet("produce", "TOPIC", "Write stdin to TOPIC, one record per line (acks=all), and print nothing on success.\n"+
		"Exits non-zero if any record failed.")
	brokers := fs.brokersFlag()
	sep := fs.String("key-separator", "", "split each line into key and value at the first `SEP`; a line without it fails")
	partition := fs.Int("partition", -1, "write every record to this `partition` (default: by key, or spread)")
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	if *partition < -1 || *partition > 1<<31-1 {
		return usagef("produce: --partition must be a partition number, got %d", *partition)
	}
	opts := []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordDeliveryTimeout(produceDeliveryTimeout)}
	if *partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	ctx, cancel := c.interruptible()
	defer cancel()
	cl, err := kafkaClient(ctx, *brokers, opts...)
	if err != nil {
		return err
	}
	defer cl.Close()
	p := &producer{cl: cl, topic: pos[0], sep: []byte(*sep), partition: int32(*partition), line: c.progress(), size: inputSize(c.stdin)}
	return p.run(ctx, c.stdin)
}

// producer sends lines as records and counts what failed.
type producer struct {
	cl        *kgo.Client
	topic     string
	sep       []byte
	partition int32
	// line shows records sent and acknowledged, and how much of a file is read, on a terminal.
	line *progress.Line
	size int64 // of the input, when it is a regular file; else 0

	read  atomic.Int64 // bytes of input read
	sent  atomic.Int64
	acked atomic.Int64

	mu     sync.Mutex
	failed int
	first  error
}

// inputSize is the size of a regular file given as stdin (a redirect: produce t < big.txt), else 0.
func inputSize(in io.Reader) int64 {
	f, ok := in.(*os.File)
	if !ok {
		return 0
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	return st.Size()
}

// show sets the progress line from the counters.
func (p *producer) show() {
	if !p.line.On() {
		return
	}
	read := ""
	if p.size > 0 {
		read = fmt.Sprintf(", %d%% of the input read", min(100, p.read.Load()*100/p.size))
	}
	p.mu.Lock()
	failed := p.failed
	p.mu.Unlock()
	p.line.Set("produce %s: %d records sent, %d acknowledged, %d failed%s", p.topic, p.sent.Load(), p.acked.Load(), failed, read)
}

func (p *producer) run(ctx context.Context, in io.Reader) error {
	r := bufio.NewReaderSize(in, 64<<10)
	n := 0
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			n++
			p.read.Add(int64(len(line)))
			p.send(ctx, n, trimEOL(line))
			p.show()
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("produce: reading stdin: %w", err)
		}
	}
	err := p.cl.Flush(ctx)
	p.show()
	p.line.Done()
	if err != nil && ctx.Err() != nil {
		return errInterrupted
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failed > 0 {
		return fmt.Errorf("produce to %s: %d of %d records failed; first: %w", p.topic, p.failed, n, p.first)
	}
	return nil
}

func (p *producer) send(ctx context.Context, lineNo int, line []byte) {
	rec := &kgo.Record{Topic: p.topic, Value: line, Partition: p.partition}
	if len(p.sep) > 0 {
		k, v, ok := bytes.Cut(line, p.sep)
		if !ok {
			p.fail(fmt.Errorf("line %d: no key separator %q", lineNo, p.sep))
			return
		}
		rec.Key, rec.Value = k, v
	}
	p.sent.Add(1)
	p.cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
		if err != nil {
			p.fail(fmt.Errorf("line %d: %w", lineNo, err))
		} else {
			p.acked.Add(1)
		}
		p.show()
	})
}

func (p *producer) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failed++
	if p.first == nil {
		p.first = err
	}
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}
