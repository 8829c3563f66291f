package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Limits of the Kafka client commands: an unreachable cluster is an error within seconds, not a hang.
const (
	defaultBrokers = "127.0.0.1:9092"
	dialTimeout    = 3 * time.Second
	pingTimeout    = 10 * time.Second
	adminTimeout   = 30 * time.Second // one admin call, e.g. CreateTopics
)

// brokersFlag adds --brokers, also read from STREAMHOUSE_BROKERS.
func (fs *flagSet) brokersFlag() *string {
	b := new(string)
	fs.StringVar(b, "brokers", defaultBrokers, "Kafka bootstrap `addresses`, comma-separated")
	fs.fromEnv("brokers")
	return b
}

// kafkaClient connects to the brokers and checks that one of them answers ApiVersions.
func kafkaClient(ctx context.Context, brokers string, opts ...kgo.Opt) (*kgo.Client, error) {
	seeds := splitList(brokers)
	if len(seeds) == 0 {
		return nil, usagef("--brokers: no addresses")
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("streamhouse-cli"),
		kgo.DialTimeout(dialTimeout),
		kgo.RequestTimeoutOverhead(5 * time.Second),
	}, opts...)...)
	if err != nil {
		return nil, usagef("--brokers %s: %v", brokers, err)
	}
	pctx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	if err := cl.Ping(pctx); err != nil {
		cl.Close()
		if ctx.Err() != nil {
			return nil, errInterrupted
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s", pingTimeout)
		}
		return nil, fmt.Errorf("no Kafka broker reachable at %s: %w", brokers, err)
	}
	return cl, nil
}

// interruptible is a context that the first SIGINT or SIGTERM cancels.
func (c *cli) interruptible() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-c.signals:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// kafkaErr adds the broker's message, if any, to a Kafka error code.
func kafkaErr(err error, msg string) error {
	if err != nil && msg != "" && msg != err.Error() {
		return fmt.Errorf("%w (%s)", err, msg)
	}
	return err
}
