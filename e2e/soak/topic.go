package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// retentionUsed says which retention the soak's topic has and why.
type retentionUsed struct {
	RequestedMs int64  `json:"requested_ms"` // --retention; 0: none asked for
	Set         bool   `json:"set"`          // the topic was created with retention.ms
	Refused     string `json:"refused,omitempty"`
	// TopicMs is retention.ms as the cluster describes the topic (-1: forever); -2 if it could not
	// be read. The end check's retention window is this, not what was asked for.
	TopicMs int64 `json:"topic_ms"`
}

func (r retentionUsed) String() string {
	var s string
	switch {
	case r.RequestedMs == 0:
		s = "topic created without retention.ms (--retention 0)"
	case r.Set:
		s = fmt.Sprintf("topic created with retention.ms=%d", r.RequestedMs)
	default:
		s = fmt.Sprintf("the cluster refused retention.ms=%d (%s); topic created without it", r.RequestedMs, r.Refused)
	}
	switch {
	case r.TopicMs == -2:
		return s + "; its retention.ms could not be read back, so the end check expects every record"
	case r.TopicMs < 0:
		return s + "; the topic keeps records forever (retention.ms=-1)"
	default:
		return s + fmt.Sprintf("; the topic's retention.ms is %d (%v)", r.TopicMs, time.Duration(r.TopicMs)*time.Millisecond)
	}
}

// window is the retention the end check applies: 0 for none.
func (r retentionUsed) window() time.Duration {
	if r.TopicMs <= 0 {
		return 0
	}
	return time.Duration(r.TopicMs) * time.Millisecond
}

// createTopic creates topic with retention.ms when asked for; a cluster that refuses it
// (INVALID_CONFIG: StreamHouse before retention existed) gets the topic without it. It then waits
// until every partition has a leader.
func createTopic(ctx context.Context, brokers []string, topic string, partitions int32, retention time.Duration) (retentionUsed, error) {
	ru := retentionUsed{RequestedMs: retention.Milliseconds(), TopicMs: -2}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return ru, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if retention > 0 {
		ms := strconv.FormatInt(ru.RequestedMs, 10)
		resp, err := adm.CreateTopic(ctx, partitions, 1, map[string]*string{"retention.ms": &ms}, topic)
		switch {
		case err == nil:
			ru.Set = true
		case errors.Is(err, kerr.InvalidConfig):
			ru.Refused = err.Error()
			if resp.ErrMessage != "" {
				ru.Refused += ": " + resp.ErrMessage
			}
		default:
			return ru, fmt.Errorf("create %s: %w", topic, err)
		}
	}
	if !ru.Set {
		if _, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil {
			return ru, fmt.Errorf("create %s: %w", topic, err)
		}
	}
	ru.TopicMs = describeRetention(ctx, adm, topic)
	return ru, awaitLeaders(ctx, brokers, topic, partitions)
}

// describeRetention is the topic's retention.ms as DescribeConfigs answers it, -2 if unreadable.
func describeRetention(ctx context.Context, adm *kadm.Client, topic string) int64 {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return -2
	}
	for _, rc := range rcs {
		for _, c := range rc.Configs {
			if c.Key == "retention.ms" && c.Value != nil {
				if v, err := strconv.ParseInt(*c.Value, 10, 64); err == nil {
					return v
				}
			}
		}
	}
	return -2
}

// awaitLeaders waits until every partition of topic has a leader.
func awaitLeaders(ctx context.Context, brokers []string, topic string, partitions int32) error {
	// franz-go answers Metadata from its cache for MetadataMinAge (5 s by default): polls would see
	// the answer from before the agents led the partitions.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MetadataMinAge(10*time.Millisecond))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	deadline := time.Now().Add(startTimeout)
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil && ledCount(md, topic) == partitions {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not every partition had a leader within %v", topic, startTimeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ledCount(md kadm.Metadata, topic string) int32 {
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return 0
	}
	var led int32
	for _, p := range td.Partitions {
		if p.Err == nil && p.Leader >= 0 {
			led++
		}
	}
	return led
}
