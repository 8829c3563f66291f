package txn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// Store is what the coordinator needs of etcd (*coord.Client).
type Store interface {
	LoadTxns(ctx context.Context, ns string, keep func(id string) bool) ([]coord.TxnSnapshot, error)
	WriteTxn(ctx context.Context, f coord.GroupFence, ns, id string, meta *coord.TxnMeta, version int64) (int64, error)
	AllocateProducerID(ctx context.Context) (int64, error)
}

// Markers writes a decided transaction's end: a commit or abort marker into each of its partitions
// (through each partition's leader) and the resolution of each group's pending offsets, all guarded
// by Marker.Guard. It returns nil once every one has landed (or had landed before: markers are
// idempotent); an error makes the coordinator try again later.
type Markers interface {
	WriteMarkers(ctx context.Context, m Marker) error
}

// Marker is the end of one transaction, as the coordinator decided it.
type Marker struct {
	TransactionalID string
	ProducerID      int64
	Epoch           int16
	Commit          bool
	Partitions      []coord.TP
	Groups          []string
	// Guard is the transactional id's state at the Prepare write: a marker applies only while that
	// is its state, so that one sent late (by a coordinator that lost its shard, or after the
	// transaction completed and another began) changes nothing.
	Guard coord.TxnGuard
}

// Config wires a Coordinator.
type Config struct {
	NS string // the agent group: transactional ids are its namespace
	// ShardOf is the shard of a transactional id (false: no offsets topic yet).
	ShardOf func(id string) (coord.TP, bool)
	// Leading is the epoch at which this agent leads a shard (false: it does not).
	Leading func(shard coord.TP) (epoch int64, ok bool)
	// Shards lists every shard (for ListTransactions); nil: none.
	Shards  func() []coord.TP
	Store   Store
	Markers Markers
	Log     hclog.Logger
	Now     func() time.Time
	// Registerer takes the coordinator's metrics (metrics.go); nil: none.
	Registerer prometheus.Registerer

	MaxTimeout    time.Duration // transaction.max.timeout.ms
	IDExpiration  time.Duration // transactional.id.expiration.ms
	CheckEvery    time.Duration // how often timeouts, expiry and shard losses are checked
	WriteTimeout  time.Duration // one etcd write of a state
	LoadWait      time.Duration // a request waits this long for its shard to load
	MarkerBackoff time.Duration // the first pause before markers are sent again; doubles to 32 times
}

// Defaults of Config, Kafka's where Kafka has one.
const (
	DefaultMaxTimeout    = 15 * time.Minute
	DefaultIDExpiration  = 7 * 24 * time.Hour
	DefaultCheckEvery    = time.Second
	DefaultWriteTimeout  = 10 * time.Second
	DefaultLoadWait      = 5 * time.Second
	DefaultMarkerBackoff = 100 * time.Millisecond
)

// Coordinator serves the transactional ids of the shards this agent leads.
type Coordinator struct {
	cfg Config
	log hclog.Logger
	m   metrics

	mu     sync.Mutex
	ctx    context.Context // Run's; nil before and after
	shards map[coord.TP]*shard
	wg     sync.WaitGroup // loads and completions

	started chan struct{} // closed once Run serves
}

// shard is the state of one shard at one epoch.
type shard struct {
	tp     coord.TP
	epoch  int64
	loaded chan struct{} // closed when ids is loaded, or the load failed (err)
	err    error
	ids    map[string]*entry // guarded by Coordinator.mu
	lost   bool              // guarded by Coordinator.mu: dropped; its entries are dead
}

// entry is one transactional id's state. Its mutex is held across a transition, etcd write
// included: one transition at a time per id, as a client sends its requests one at a time.
type entry struct {
	mu         sync.Mutex
	id         string
	meta       coord.TxnMeta
	version    int64                  // 0: never written
	completing atomic.Bool            // its markers are being written (Prepare*)
	state      atomic.Pointer[string] // meta.State, for the metrics (read without mu)
	dead       atomic.Bool            // dropped from its shard: a request that finds it so starts over
}

// New checks cfg and fills in its defaults; it starts nothing.
func New(cfg Config) (*Coordinator, error) {
	if cfg.NS == "" || cfg.ShardOf == nil || cfg.Leading == nil || cfg.Store == nil || cfg.Markers == nil {
		return nil, errors.New("txn: Config needs NS, ShardOf, Leading, Store and Markers")
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&cfg.MaxTimeout, DefaultMaxTimeout}, {&cfg.IDExpiration, DefaultIDExpiration}, {&cfg.CheckEvery, DefaultCheckEvery},
		{&cfg.WriteTimeout, DefaultWriteTimeout}, {&cfg.LoadWait, DefaultLoadWait}, {&cfg.MarkerBackoff, DefaultMarkerBackoff}} {
		if *d.v <= 0 {
			*d.v = d.def
		}
	}
	c := &Coordinator{cfg: cfg, log: cfg.Log, shards: map[coord.TP]*shard{}, started: make(chan struct{})}
	c.m = newMetrics(c, cfg.Registerer)
	return c, nil
}

// Run serves until ctx ends: it checks timeouts, idle ids and lost shards every CheckEvery. Requests
// before Run answer COORDINATOR_NOT_AVAILABLE. It returns once every goroutine it started has ended.
// It is called once.
func (c *Coordinator) Run(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	close(c.started)
	t := time.NewTicker(c.cfg.CheckEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			c.ctx = nil
			for _, sh := range c.shards {
				c.dropLocked(sh)
			}
			c.mu.Unlock()
			c.wg.Wait()
			return
		case <-t.C:
			c.check(ctx)
		}
	}
}

// runCtx is Run's context, nil when Run is not running. Callers hold c.mu.
func (c *Coordinator) runCtxLocked() context.Context { return c.ctx }

// shardFor finds, or starts loading, the shard of id at the epoch this agent leads it, and waits for
// its load.
func (c *Coordinator) shardFor(ctx context.Context, id string) (*shard, error) {
	tp, ok := c.cfg.ShardOf(id)
	if !ok {
		return nil, kerr.CoordinatorNotAvailable
	}
	return c.shardAt(ctx, tp)
}

// shardAt finds, or starts loading, shard tp at the epoch this agent leads it, and waits for its load.
func (c *Coordinator) shardAt(ctx context.Context, tp coord.TP) (*shard, error) {
	epoch, ok := c.cfg.Leading(tp)
	if !ok {
		return nil, kerr.NotCoordinator
	}
	c.mu.Lock()
	runCtx := c.runCtxLocked()
	if runCtx == nil {
		c.mu.Unlock()
		return nil, kerr.CoordinatorNotAvailable
	}
	sh := c.shardLocked(runCtx, tp, epoch)
	c.mu.Unlock()
	wait := time.NewTimer(c.cfg.LoadWait)
	defer wait.Stop()
	select {
	case <-sh.loaded:
	case <-wait.C:
		return nil, kerr.CoordinatorLoadInProgress
	case <-ctx.Done():
		return nil, kerr.CoordinatorNotAvailable
	}
	if sh.err != nil {
		return nil, kerr.CoordinatorNotAvailable
	}
	return sh, nil
}

// shardLocked returns shard tp at epoch, starting its load if it is not held at that epoch (c.mu
// held, Run running).
func (c *Coordinator) shardLocked(runCtx context.Context, tp coord.TP, epoch int64) *shard {
	sh := c.shards[tp]
	if sh != nil && sh.epoch != epoch {
		c.dropLocked(sh)
		sh = nil
	}
	if sh == nil {
		sh = &shard{tp: tp, epoch: epoch, loaded: make(chan struct{}), ids: map[string]*entry{}}
		c.shards[tp] = sh
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.load(runCtx, sh)
		}()
	}
	return sh
}

// adopt starts loading every shard this agent leads and does not hold: a coordinator that takes a
// shard over resumes its decided transactions and times out its ongoing ones without waiting for a
// client to ask about one of its ids (a producer that died after EndTxn never would).
func (c *Coordinator) adopt() {
	if c.cfg.Shards == nil {
		return
	}
	for _, tp := range c.cfg.Shards() {
		epoch, ok := c.cfg.Leading(tp)
		if !ok {
			continue
		}
		c.mu.Lock()
		if runCtx := c.runCtxLocked(); runCtx != nil {
			c.shardLocked(runCtx, tp, epoch)
		}
		c.mu.Unlock()
	}
}

// load reads the shard's ids from etcd (the read follows this agent's acquisition of the shard, so it
// sees every write of its predecessors) and resumes the completion of decided transactions.
func (c *Coordinator) load(ctx context.Context, sh *shard) {
	lctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
	snaps, err := c.cfg.Store.LoadTxns(lctx, c.cfg.NS, func(id string) bool {
		tp, ok := c.cfg.ShardOf(id)
		return ok && tp == sh.tp
	})
	cancel()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.log.Warn("loading a shard's transactional ids failed", "shard", sh.tp, "error", err)
		sh.err = err
		if c.shards[sh.tp] == sh {
			delete(c.shards, sh.tp) // the next request loads it again
		}
		close(sh.loaded)
		return
	}
	c.m.loads.Inc()
	for _, s := range snaps {
		e := &entry{id: s.ID, meta: s.Meta, version: s.Version}
		e.publish()
		sh.ids[s.ID] = e
		if isPrepare(e.meta.State) && !sh.lost {
			c.m.resumed.Inc()
			c.startCompletionLocked(ctx, sh, e)
		}
	}
	close(sh.loaded)
}

// dropLocked forgets a shard: its entries die, its completions stop at their next step.
func (c *Coordinator) dropLocked(sh *shard) {
	if sh.lost {
		return
	}
	sh.lost = true
	if c.shards[sh.tp] == sh {
		delete(c.shards, sh.tp)
	}
	for _, e := range sh.ids {
		e.dead.Store(true)
	}
}

// drop forgets a shard (a write found it fenced, or its state unknown).
func (c *Coordinator) drop(sh *shard) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(sh)
}

// check drops shards this agent no longer leads, loads those it newly leads, aborts transactions past
// their timeout and deletes ids idle past their expiry.
func (c *Coordinator) check(ctx context.Context) {
	c.adopt()
	now := c.cfg.Now()
	type item struct {
		sh *shard
		e  *entry
	}
	var items []item
	c.mu.Lock()
	for _, sh := range c.shards {
		if epoch, ok := c.cfg.Leading(sh.tp); !ok || epoch != sh.epoch {
			c.dropLocked(sh)
			continue
		}
		select {
		case <-sh.loaded:
		default:
			continue
		}
		for _, e := range sh.ids {
			items = append(items, item{sh, e})
		}
	}
	c.mu.Unlock()
	for _, it := range items {
		c.checkEntry(ctx, it.sh, it.e, now)
	}
}

// checkEntry aborts e's transaction if it is past its timeout, or deletes e if it is idle past its
// expiry.
func (c *Coordinator) checkEntry(ctx context.Context, sh *shard, e *entry, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead.Load() || e.version == 0 || e.completing.Load() {
		return
	}
	switch m := &e.meta; {
	case m.State == coord.TxnOngoing && now.Sub(time.UnixMilli(m.StartMs)) > time.Duration(m.TimeoutMs)*time.Millisecond:
		c.abortTimedOut(ctx, sh, e)
	case (m.State == coord.TxnEmpty || isComplete(m.State)) && now.Sub(time.UnixMilli(m.UpdateMs)) > c.cfg.IDExpiration:
		c.expire(ctx, sh, e)
	}
}

// write persists meta as e's state (e.mu held) and reports what a client should hear on failure: a
// fenced shard is dropped (NOT_COORDINATOR); an unknown outcome or a changed state drops the shard
// too, which the next request loads again from etcd (COORDINATOR_NOT_AVAILABLE, retriable).
func (c *Coordinator) write(ctx context.Context, sh *shard, e *entry, meta *coord.TxnMeta) error {
	wctx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
	defer cancel()
	v, err := c.cfg.Store.WriteTxn(wctx, coord.GroupFence{Shard: sh.tp, Epoch: sh.epoch}, c.cfg.NS, e.id, meta, e.version)
	switch {
	case err == nil:
		if meta != nil {
			e.meta = *meta
		}
		e.version = v
		e.publish()
		return nil
	case errors.Is(err, coord.ErrTxnTooLarge):
		return fmt.Errorf("%w: %v", kerr.InvalidRequest, err)
	case errors.Is(err, coord.ErrFenced):
		c.log.Info("transaction coordinator fenced: dropping the shard", "shard", sh.tp, "epoch", sh.epoch, "transactional_id", e.id)
		c.drop(sh)
		return kerr.NotCoordinator
	default:
		c.log.Warn("transaction state write failed: reloading the shard", "shard", sh.tp, "transactional_id", e.id, "error", err)
		c.drop(sh)
		return kerr.CoordinatorNotAvailable
	}
}

// publish makes e's state readable without its mutex (e.mu held, or e not yet shared).
func (e *entry) publish() {
	s := e.meta.State
	e.state.Store(&s)
}

func isPrepare(s string) bool  { return s == coord.TxnPrepareCommit || s == coord.TxnPrepareAbort }
func isComplete(s string) bool { return s == coord.TxnCompleteCommit || s == coord.TxnCompleteAbort }
