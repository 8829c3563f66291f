package workload

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// ackTracker knows when each partition last had a send acknowledged, and wakes whoever waits for
// progress.
type ackTracker struct {
	mu      sync.Mutex
	last    map[history.TP]time.Time
	changed chan struct{} // closed and replaced on every acknowledgement
}

func newAckTracker() *ackTracker {
	return &ackTracker{last: map[history.TP]time.Time{}, changed: make(chan struct{})}
}

func (t *ackTracker) ack(tp history.TP, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if at.After(t.last[tp]) {
		t.last[tp] = at
	}
	close(t.changed)
	t.changed = make(chan struct{})
}

// behind returns the partitions of tps with no acknowledgement after since, and a channel closed on
// the next acknowledgement.
func (t *ackTracker) behind(tps []history.TP, since time.Time) ([]history.TP, <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var late []history.TP
	for _, tp := range tps {
		if !t.last[tp].After(since) {
			late = append(late, tp)
		}
	}
	return late, t.changed
}

// waitAll waits until every partition of tps has an acknowledgement after since.
func (t *ackTracker) waitAll(ctx context.Context, tps []history.TP, since time.Time) error {
	for {
		late, changed := t.behind(tps, since)
		if len(late) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%d partitions acknowledged nothing since %s, e.g. %v: %w",
				len(late), since.Format("15:04:05.000"), late[0], ctx.Err())
		}
	}
}
