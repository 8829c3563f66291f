package agent

import (
	"sync/atomic"
	"testing"

	"github.com/streamhouse/streamhouse/segstore"
)

// The agent that wrote an object serves its extents from its cache: consumers tailing the log cost no
// GET. One whose cache is off reads them from the store, and gets the same records.
func TestFetchServesWhatItWroteFromCache(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cacheBytes int64
		wantGets   bool
	}{
		{"write-through", 64 << 20, false},
		{"cache off", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cluster := newTestCluster(t)
			var gets atomic.Int64
			cluster.store.SetFault(segstore.OpGetRange, func(string) error { gets.Add(1); return nil })
			a := cluster.agent("a", func(c *Config) { c.CacheBytes = tc.cacheBytes })
			createTopic(t, kgoClient(t, nil, a), "t", 3, nil)
			produced := produceN(t, kgoClient(t, nil, a), "t", "v", 300)
			checkDense(t, produced, consumeAll(t, []*Agent{a}, "t", len(produced)))
			if got := gets.Load() > 0; got != tc.wantGets {
				t.Errorf("%d GETs reading back what the agent wrote; want GETs: %v", gets.Load(), tc.wantGets)
			}
		})
	}
}
