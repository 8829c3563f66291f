package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// consumeFlags are the flags of "streamhouse consume".
type consumeFlags struct {
	fromBeginning bool
	partition     int
	offset        int64
	max           int
	timeout       time.Duration
	printKeys     bool
}

func (c *cli) consume(args []string) error {
	fs := c.newFlagSet("consume", "TOPIC", "Print TOPIC's records, one value per line, as Kafka's console consumer does: from the end\n"+
		"unless --from-beginning or --offset says otherwise, until interrupted, --max or --timeout.\n"+
		"No consumer group is used and no offsets are committed.")
	brokers := fs.brokersFlag()
	f := &consumeFlags{}
	fs.BoolVar(&f.fromBeginning, "from-beginning", false, "start at the earliest record instead of the end")
	fs.IntVar(&f.partition, "partition", -1, "read only this `partition` (default: all)")
	fs.Int64Var(&f.offset, "offset", -1, "start at this `offset` (needs --partition; default: the end, or the start with --from-beginning)")
	fs.IntVar(&f.max, "max", 0, "exit after this many `records` (0: no limit)")
	fs.DurationVar(&f.timeout, "timeout", 0, "exit when no record came for this `duration` (0: wait forever); an error if --max was not reached")
	fs.BoolVar(&f.printKeys, "print-keys", false, "print key<TAB>value")
	pos, err := fs.parseN(args, 1)
	if err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return err
	}
	ctx, cancel := c.interruptible()
	defer cancel()
	if err := checkTopic(ctx, *brokers, pos[0], f.partition); err != nil {
		return err
	}
	cl, err := kafkaClient(ctx, *brokers, f.consumeOpts(pos[0])...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return f.run(ctx, cl, c.stdout)
}

func (f *consumeFlags) validate() error {
	switch {
	case f.partition < -1 || f.partition > 1<<31-1:
		return usagef("consume: --partition must be a partition number, got %d", f.partition)
	case f.offset < -1:
		return usagef("consume: --offset must not be negative, got %d", f.offset)
	case f.offset >= 0 && f.partition < 0:
		return usagef("consume: --offset needs --partition")
	case f.offset >= 0 && f.fromBeginning:
		return usagef("consume: --offset and --from-beginning exclude each other")
	case f.max < 0:
		return usagef("consume: --max must not be negative, got %d", f.max)
	case f.timeout < 0:
		return usagef("consume: --timeout must not be negative, got %v", f.timeout)
	}
	return nil
}

// checkTopic fails clearly for a missing topic or partition; a consumer alone would wait for it forever.
func checkTopic(ctx context.Context, brokers, topic string, partition int) error {
	cl, err := kafkaClient(ctx, brokers)
	if err != nil {
		return err
	}
	defer cl.Close()
	actx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	topics, err := kadm.NewClient(cl).ListTopics(actx, topic)
	if err == nil {
		err = topics[topic].Err
	}
	if err != nil {
		return fmt.Errorf("consume %s: %w", topic, err)
	}
	if n := len(topics[topic].Partitions); partition >= n {
		return usagef("consume %s: no partition %d (the topic has %d)", topic, partition, n)
	}
	return nil
}

func (f *consumeFlags) consumeOpts(topic string) []kgo.Opt {
	start := kgo.NewOffset().AtEnd()
	if f.fromBeginning {
		start = kgo.NewOffset().AtStart()
	}
	if f.partition < 0 {
		return []kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(start)}
	}
	if f.offset >= 0 {
		start = kgo.NewOffset().At(f.offset)
	}
	return []kgo.Opt{kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {int32(f.partition): start}})}
}

var errIdle = errors.New("idle timeout")

func (f *consumeFlags) run(ctx context.Context, cl *kgo.Client, out io.Writer) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	n := 0
	for f.max == 0 || n < f.max {
		recs, err := f.poll(ctx, cl)
		for _, r := range recs {
			if f.max > 0 && n == f.max {
				break
			}
			if f.printKeys {
				w.Write(r.Key)
				w.WriteByte('\t')
			}
			w.Write(r.Value)
			w.WriteByte('\n')
			n++
		}
		if ferr := w.Flush(); ferr != nil {
			return fmt.Errorf("consume: writing output: %w", ferr)
		}
		switch {
		case errors.Is(err, errIdle) && f.max > 0:
			return fmt.Errorf("consume: %d of %d records within %s", n, f.max, f.timeout)
		case errors.Is(err, errIdle), ctx.Err() != nil:
			return nil // like the console consumer: an interrupt or idle timeout ends the output
		case err != nil:
			return err
		}
	}
	return nil
}

// poll waits up to --timeout for records; errIdle when none came.
func (f *consumeFlags) poll(ctx context.Context, cl *kgo.Client) ([]*kgo.Record, error) {
	pctx := ctx
	if f.timeout > 0 {
		var cancel context.CancelFunc
		pctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	fetches := cl.PollFetches(pctx)
	for _, fe := range fetches.Errors() {
		switch {
		case errors.Is(fe.Err, context.DeadlineExceeded) && ctx.Err() == nil:
			return nil, errIdle
		case errors.Is(fe.Err, context.Canceled), errors.Is(fe.Err, kgo.ErrClientClosed):
			return fetches.Records(), nil
		default:
			return fetches.Records(), fmt.Errorf("consume %s[%d]: %w", fe.Topic, fe.Partition, fe.Err)
		}
	}
	return fetches.Records(), nil
}
