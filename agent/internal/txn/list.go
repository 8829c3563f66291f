package txn

import (
	"context"
	"slices"
	"strings"

	"github.com/streamhouse/streamhouse/coord"
)

// Listed is one transactional id as ListTransactions reports it.
type Listed struct {
	ID         string
	ProducerID int64
	State      string
	StartMs    int64 // when its ongoing or last transaction started (0: none)
}

// List reports the transactional ids of every shard this agent leads, loading those not loaded yet,
// sorted by id.
func (c *Coordinator) List(ctx context.Context) ([]Listed, error) {
	var shards []coord.TP
	if c.cfg.Shards != nil {
		shards = c.cfg.Shards()
	}
	var out []Listed
	for _, tp := range shards {
		if _, ok := c.cfg.Leading(tp); !ok {
			continue
		}
		sh, err := c.shardAt(ctx, tp)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		entries := make([]*entry, 0, len(sh.ids))
		for _, e := range sh.ids {
			entries = append(entries, e)
		}
		c.mu.Unlock()
		for _, e := range entries {
			e.mu.Lock()
			if !e.dead.Load() && e.version != 0 {
				out = append(out, Listed{ID: e.id, ProducerID: e.meta.ProducerID, State: e.meta.State, StartMs: e.meta.StartMs})
			}
			e.mu.Unlock()
		}
	}
	slices.SortFunc(out, func(a, b Listed) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}
