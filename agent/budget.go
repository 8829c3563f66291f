package agent

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// byteBudget is queued.max.request.bytes: the bytes an agent holds in requests it is reading or
// handling. A frame is charged before its buffer is allocated and released once its handler has
// answered, so a client that sends frames faster than they are handled, or sends most of a large
// frame and stops, holds at most the budget between all of them. Reading waits for room; it does not
// allocate first.
type byteBudget struct {
	total int64
	held  prometheus.Gauge

	mu    sync.Mutex
	used  int64
	freed chan struct{} // closed and replaced by each release
}

func newByteBudget(total int64, held prometheus.Gauge) *byteBudget {
	return &byteBudget{total: total, held: held, freed: make(chan struct{})}
}

// acquire charges n bytes, waiting until they fit or ctx ends; onWait runs once if it has to wait. Any
// waiting charge that fits goes first when room is freed: a large frame does not hold up the small
// ones behind it. n must not exceed the total.
func (b *byteBudget) acquire(ctx context.Context, n int64, onWait func()) error {
	for waited := false; ; waited = true {
		b.mu.Lock()
		if b.used+n <= b.total {
			b.used += n
			b.mu.Unlock()
			b.held.Add(float64(n))
			return nil
		}
		freed := b.freed
		b.mu.Unlock()
		if !waited {
			onWait()
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// release returns n charged bytes.
func (b *byteBudget) release(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
	b.held.Sub(float64(n))
}
