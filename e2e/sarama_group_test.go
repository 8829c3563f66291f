package e2e

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// saramaHandler counts the values a sarama group member consumes and marks them for commit.
type saramaHandler struct {
	mu   *sync.Mutex
	seen map[string]int
	got  chan struct{}
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.mu.Lock()
		h.seen[string(m.Value)]++
		h.mu.Unlock()
		s.MarkMessage(m, "")
		select {
		case h.got <- struct{}{}:
		default:
		}
	}
	return nil
}

// Two sarama consumer-group members (range and round-robin rebalance strategies negotiated by sarama)
// share a group: together they read every record once, and their committed offsets reach the end.
func TestSaramaConsumerGroup(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	brokers := d.brokers(t)
	createTopic(t, brokers, "sarama-group", 4)
	want := values("sarama-group", 400)

	cfg := saramaConfig("none")
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	h := &saramaHandler{mu: &sync.Mutex{}, seen: map[string]int{}, got: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var groups []sarama.ConsumerGroup
	for range 2 {
		g, err := sarama.NewConsumerGroup(strings.Split(brokers, ","), "sarama-group", cfg)
		if err != nil {
			t.Fatal(err)
		}
		groups = append(groups, g)
		wg.Go(func() {
			for ctx.Err() == nil {
				if err := g.Consume(ctx, []string{"sarama-group"}, h); err != nil && ctx.Err() == nil {
					t.Errorf("sarama consume: %v", err)
					return
				}
			}
		})
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, g := range groups {
			g.Close()
		}
	})
	// Produce once both members have joined, so that no rebalance re-delivers uncommitted records.
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	waitGroup(t, kadm.NewClient(cl), "sarama-group", 2)
	saramaSyncProduce(t, brokers, "none", "sarama-group", want)
	deadline := time.After(groupTimeout)
	for {
		h.mu.Lock()
		n := len(h.seen)
		h.mu.Unlock()
		if n == len(want) {
			break
		}
		select {
		case <-h.got:
		case <-deadline:
			t.Fatalf("the sarama group read %d of %d values", n, len(want))
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, v := range want {
		if h.seen[v] != 1 {
			t.Fatalf("value %s read %d times, want once", v, h.seen[v])
		}
	}
}
