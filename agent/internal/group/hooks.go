package group

import (
	"context"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// Hooks for the agent's tests, which run a coordinator inside a real agent against etcd: a slow or
// failing store, a frozen view of leadership, a fake clock and retention sweeps on demand. Each is
// called before Run, except the sweeps.

// WrapStore replaces the coordinator's store by wrap of it.
func (gc *Coordinator) WrapStore(wrap func(Store) Store) { gc.store = wrap(gc.store) }

// WrapLeader replaces the coordinator's view of the agent's leadership by wrap of it.
func (gc *Coordinator) WrapLeader(wrap func(func(coord.TP) (Leadership, bool)) func(coord.TP) (Leadership, bool)) {
	gc.leader = wrap(gc.leader)
}

// SetClock makes now the coordinator's clock for group state and retention.
func (gc *Coordinator) SetClock(now func() time.Time) { gc.cfg.Now = now }

// Now is the coordinator's clock.
func (gc *Coordinator) Now() time.Time { return gc.cfg.Now() }

// ExpireOffsets runs one retention sweep at now on every loaded shard this agent leads, and returns
// what it deleted.
func (gc *Coordinator) ExpireOffsets(now time.Time) (offsets, groups int) {
	for _, sh := range gc.loadedShards() {
		o, g := sh.expire(now)
		offsets, groups = offsets+o, groups+g
	}
	return offsets, groups
}

// ExpireStale loads shard tp as a coordinator whose epoch is one before the loaded shard's would
// (one that lost the shard and has not noticed), sweeps it at now, and reports the groups it loaded,
// what its sweep deleted and whether it found itself fenced. ok is false if tp is not loaded here.
func (gc *Coordinator) ExpireStale(ctx context.Context, tp coord.TP, now time.Time) (loaded, offsets, groups int, lost, ok bool) {
	var cur *shard
	for _, sh := range gc.loadedShards() {
		if sh.tp == tp {
			cur = sh
		}
	}
	if cur == nil {
		return 0, 0, 0, false, false
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stale := &shard{gc: gc, tp: tp, lead: cur.lead, n: cur.n, fence: coord.GroupFence{Shard: tp, Epoch: cur.fence.Epoch - 1},
		ctx: sctx, cancel: cancel, ready: make(chan struct{}), groups: map[string]*group{}}
	stale.env = &groupEnv{cfg: &gc.cfg, clock: gc.timers, log: gc.log, write: stale.write, lost: stale.lose}
	stale.load()
	defer stale.drop()
	loaded = len(stale.list())
	offsets, groups = stale.expire(now)
	return loaded, offsets, groups, stale.broken.Load(), true
}
