package workload

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// herdInterval is how often each herd client asks for metadata.
const herdInterval = 500 * time.Millisecond

// Herd is many clients, each with its own connections, asking for metadata over and over: the
// thundering herd that reconnects when every agent restarts at once.
type Herd struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	lastOK  []time.Time // per client: its latest successful request
	clients []*kgo.Client
}

// StartHerd starts n clients against seeds and waits until each has had an answer.
func StartHerd(ctx context.Context, seeds []string, n int) (*Herd, error) {
	hctx, cancel := context.WithCancel(context.Background())
	h := &Herd{cancel: cancel, lastOK: make([]time.Time, n)}
	for i := range n {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID(fmt.Sprintf("chaos-herd-%d", i)),
			kgo.RequestRetries(0)}, Security.opts()...)...)
		if err != nil {
			h.Close()
			return nil, err
		}
		h.clients = append(h.clients, cl)
		h.wg.Go(func() { h.run(hctx, i, cl) })
	}
	if _, err := h.WaitAnswered(ctx, time.Time{}); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func (h *Herd) run(ctx context.Context, i int, cl *kgo.Client) {
	t := time.NewTicker(herdInterval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cl.Request(rctx, kmsg.NewPtrMetadataRequest())
		cancel()
		if err == nil {
			h.mu.Lock()
			h.lastOK[i] = time.Now()
			h.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// WaitAnswered waits until every client has had an answer after since, and returns how long after
// since the last of them got it (each client's first answer after since).
func (h *Herd) WaitAnswered(ctx context.Context, since time.Time) (time.Duration, error) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	first := make([]time.Time, len(h.lastOK))
	for {
		h.mu.Lock()
		waiting := 0
		for i, ok := range h.lastOK {
			if first[i].IsZero() && ok.After(since) {
				first[i] = ok
			}
			if first[i].IsZero() {
				waiting++
			}
		}
		h.mu.Unlock()
		if waiting == 0 {
			if since.IsZero() {
				return 0, nil
			}
			return slices.MaxFunc(first, func(a, b time.Time) int { return a.Compare(b) }).Sub(since), nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return 0, fmt.Errorf("%d of %d herd clients had no answer: %w", waiting, len(first), ctx.Err())
		}
	}
}

// Close stops every client.
func (h *Herd) Close() {
	h.cancel()
	h.wg.Wait()
	for _, cl := range h.clients {
		cl.Close()
	}
}
