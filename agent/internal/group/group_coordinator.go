package group

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// Group coordination rides on partition leadership. Each agent group has an internal topic,
// __consumer_offsets (__consumer_offsets.<agent group> for groups other than the default one), bound
// to that agent group, whose partitions are the coordinator shards: a consumer group hashes to one
// shard, and the agent leading that partition — chosen by placement like any other — is the
// group's coordinator. The topic holds no records; the shard's leader key is what matters: every
// etcd write of the shard's groups is fenced by its create revision (coord.WriteGroup), so a
// coordinator that lost its shard can never change a group.
//
// A coordinator loads a shard's groups from etcd when it starts leading it (the read follows the
// acquisition, so it sees every write of the previous coordinators), serves them from memory, and
// drops them at once when it stops leading: their members get NOT_COORDINATOR, find the new
// coordinator and carry on there.

// DefaultShards is the partition count of a new offsets topic. Groups hash over the count the topic
// has, so it must not change afterwards (as Kafka's offsets.topic.num.partitions).
const DefaultShards = 16

// Kafka's defaults of the limits an operator sets (agent flags).
const (
	DefaultMaxSize        = 1000               // group.max.size (Kafka's is unlimited)
	DefaultRetention      = 7 * 24 * time.Hour // offsets.retention.minutes
	DefaultRetentionCheck = 10 * time.Minute   // offsets.retention.check.interval.ms
)

// Shard is the shard of a group among n: a stable hash, so every agent agrees.
func Shard(group string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(group))
	return int32(h.Sum32() % uint32(n))
}

// Config holds the coordinator's limits; Kafka's defaults.
type Config struct {
	MinSession       time.Duration // group.min.session.timeout.ms
	MaxSession       time.Duration // group.max.session.timeout.ms
	MaxMetadataBytes int           // offset.metadata.max.bytes
	MaxSize          int           // group.max.size
	Shards           int32         // partitions of a new offsets topic
	WriteTimeout     time.Duration // one etcd write of a group
	LoadWait         time.Duration // a request waits this long for its shard to load
	SweepEvery       time.Duration // leadership changes are also noticed by watching etcd
	ReapEvery        time.Duration // groups holding nothing are forgotten this often
	Retention        time.Duration // offsets.retention.minutes; 0: offsets never expire
	RetentionCheck   time.Duration // offsets.retention.check.interval.ms
	Now              func() time.Time
	MaxSizeHit       func() // counts a join refused at MaxSize; nil in tests
}

func DefaultConfig() Config {
	return Config{
		MinSession:       6 * time.Second,
		MaxSession:       30 * time.Minute,
		MaxMetadataBytes: 4096,
		MaxSize:          DefaultMaxSize,
		Shards:           DefaultShards,
		WriteTimeout:     10 * time.Second,
		LoadWait:         5 * time.Second,
		SweepEvery:       250 * time.Millisecond,
		ReapEvery:        time.Minute,
		Retention:        DefaultRetention,
		RetentionCheck:   DefaultRetentionCheck,
		Now:              time.Now,
	}
}

// Store is what the coordinator needs of etcd (*coord.Client).
type Store interface {
	LoadGroups(ctx context.Context, ns string, keep func(group string) bool) ([]coord.GroupSnapshot, error)
	LoadGroup(ctx context.Context, ns, group string) (coord.GroupSnapshot, error)
	WriteGroup(ctx context.Context, f coord.GroupFence, ns, group string, w coord.GroupWrite) (version int64, err error)
	CreateTopic(ctx context.Context, t coord.Topic) (coord.Topic, error)
}

// View is what it reads of the watched view (*coord.Cache).
type View interface {
	Topic(name string) (coord.Topic, bool)
	TopicByID(id coord.TopicID) (coord.Topic, bool)
	HighWatermark(tp coord.TP) int64
	Changed() <-chan struct{}
}

// Coordinator serves the consumer groups of the shards this agent leads.
type Coordinator struct {
	cfg    Config
	log    hclog.Logger
	ns     string // the agent group: consumer groups are its namespace
	topic  string // its offsets topic
	store  Store
	view   View
	leader func(coord.TP) (Leadership, bool) // the agent's leadership of a partition, if any
	// lost drops a leadership whose epoch a group write found fenced.
	lost         func(Leadership)
	topicConfigs map[string]string
	serves       func(coord.Topic) bool
	timers       *timers
	kick         chan struct{}

	mu       sync.Mutex
	ctx      context.Context // set by run; nil before and after
	shards   map[coord.TP]*shard
	loaders  sync.WaitGroup
	creating bool // an offsets topic creation is under way
}

// Leadership is this agent's leadership of a coordinator shard: the partition, its topic's name and
// the epoch (the leader key's create revision) that fences every group write of the shard. Two
// leaderships of one partition are the same while their epochs are.
type Leadership struct {
	TP    coord.TP
	Topic string
	Epoch int64
}

// Deps is what the coordinator is wired to.
type Deps struct {
	Log          hclog.Logger
	NS           string            // the agent group: consumer groups are its namespace
	Topic        string            // its offsets topic
	TopicConfigs map[string]string // the configs the offsets topic is created with
	Store        Store
	View         View
	// Leader is the agent's leadership of a partition, if it has one (nothing once the session is
	// lost, even before the agent's leadership loop notices).
	Leader func(coord.TP) (Leadership, bool)
	// Lost gives up a leadership whose group write was fenced.
	Lost func(Leadership)
	// Serves reports whether the agent serves a topic (its agent group's), for offset requests.
	Serves func(coord.Topic) bool
	// Registerer takes the group lag collector; nil: none.
	Registerer prometheus.Registerer
}

// New returns a coordinator; it starts nothing (Run does).
func New(cfg Config, d Deps) *Coordinator {
	gc := &Coordinator{
		cfg:          cfg,
		log:          d.Log,
		ns:           d.NS,
		topic:        d.Topic,
		topicConfigs: d.TopicConfigs,
		store:        d.Store,
		view:         d.View,
		leader:       d.Leader,
		lost:         d.Lost,
		serves:       d.Serves,
		timers:       &timers{},
		kick:         make(chan struct{}, 1),
		shards:       map[coord.TP]*shard{},
	}
	if d.Registerer != nil {
		d.Registerer.MustRegister(newGroupLagCollector(gc))
	}
	return gc
}

// Topic is the offsets topic whose partitions are the coordinator's shards.
func (gc *Coordinator) Topic() string { return gc.topic }

// EnsureTopic creates the offsets topic if it does not exist.
func (gc *Coordinator) EnsureTopic(ctx context.Context) error {
	_, err := gc.store.CreateTopic(ctx, coord.Topic{Name: gc.topic, Partitions: gc.cfg.Shards,
		Configs: gc.topicConfigs})
	if err == nil {
		gc.log.Info("offsets topic created", "topic", gc.topic, "partitions", gc.cfg.Shards)
	}
	if errors.Is(err, coord.ErrTopicExists) {
		return nil
	}
	return err
}

// EnsureTopicAsync re-creates a missing offsets topic (someone deleted it) in the background.
func (gc *Coordinator) EnsureTopicAsync() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.ctx == nil || gc.creating {
		return
	}
	gc.creating = true
	ctx := gc.ctx
	gc.loaders.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, gc.cfg.WriteTimeout)
		defer cancel()
		if err := gc.EnsureTopic(cctx); err != nil && ctx.Err() == nil {
			gc.log.Warn("creating the offsets topic failed", "topic", gc.topic, "error", err)
		}
		gc.mu.Lock()
		gc.creating = false
		gc.mu.Unlock()
	})
}

// Run keeps the loaded shards equal to the shards this agent leads, until ctx ends; then it drops
// them all and waits for every timer and loader.
func (gc *Coordinator) Run(ctx context.Context) {
	gc.mu.Lock()
	gc.ctx = ctx
	gc.mu.Unlock()
	defer gc.shutdown()
	tick := time.NewTicker(gc.cfg.SweepEvery)
	defer tick.Stop()
	lastReap := time.Now()
	for {
		changed := gc.view.Changed()
		gc.sweep()
		if time.Since(lastReap) >= gc.cfg.ReapEvery {
			gc.reap()
			lastReap = time.Now()
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-gc.kick:
		case <-ctx.Done():
			return
		}
	}
}

// reap forgets the groups that hold nothing (say, a member got MEMBER_ID_REQUIRED and never came
// back), as Kafka's periodic group clean-up does.
func (gc *Coordinator) reap() {
	for _, sh := range gc.loadedShards() {
		for _, g := range sh.list() {
			g.mu.Lock()
			vacant := g.vacant()
			g.mu.Unlock()
			if vacant {
				sh.forget(g)
			}
		}
	}
}

func (gc *Coordinator) kickSweep() {
	select {
	case gc.kick <- struct{}{}:
	default:
	}
}

// sweep drops the shards this agent no longer leads (or whose writes were fenced) and starts
// loading those it newly leads.
func (gc *Coordinator) sweep() {
	led := map[coord.TP]Leadership{}
	t, ok := gc.view.Topic(gc.topic)
	if ok {
		for p := range t.Partitions {
			if l, ok := gc.leader(t.TP(p)); ok {
				led[l.TP] = l
			}
		}
	}
	var drop []*shard
	gc.mu.Lock()
	if gc.ctx == nil {
		gc.mu.Unlock()
		return
	}
	for tp, sh := range gc.shards {
		if l, ok := led[tp]; !ok || l.Epoch != sh.lead.Epoch || sh.broken.Load() {
			if sh.broken.Load() {
				gc.lost(sh.lead)
			}
			drop = append(drop, sh)
			delete(gc.shards, tp)
		}
	}
	for tp, l := range led {
		if gc.shards[tp] == nil {
			gc.shards[tp] = gc.newShard(tp, l, t.Partitions)
		}
	}
	gc.mu.Unlock()
	for _, sh := range drop {
		sh.drop()
	}
}

// shutdown drops every shard and waits for loaders and timers.
func (gc *Coordinator) shutdown() {
	gc.mu.Lock()
	gc.ctx = nil
	shards := gc.shards
	gc.shards = map[coord.TP]*shard{}
	gc.mu.Unlock()
	for _, sh := range shards {
		sh.drop()
	}
	gc.loaders.Wait()
	gc.timers.close()
}

// newShard creates a shard and starts loading it. Called with gc.mu held and gc.ctx set.
func (gc *Coordinator) newShard(tp coord.TP, l Leadership, n int32) *shard {
	ctx, cancel := context.WithCancel(gc.ctx)
	sh := &shard{gc: gc, tp: tp, lead: l, n: n, fence: coord.GroupFence{Shard: tp, Epoch: l.Epoch},
		ctx: ctx, cancel: cancel, ready: make(chan struct{}), groups: map[string]*group{}}
	sh.env = &groupEnv{cfg: &gc.cfg, clock: gc.timers, log: gc.log, write: sh.write, lost: sh.lose}
	gc.loaders.Go(sh.load)
	if gc.cfg.Retention > 0 {
		gc.loaders.Go(sh.retain)
	}
	return sh
}

// shardOf finds the loaded shard of a group at this agent, or the Kafka error to answer.
func (gc *Coordinator) shardOf(ctx context.Context, group string) (*shard, int16) {
	t, ok := gc.view.Topic(gc.topic)
	if !ok {
		gc.EnsureTopicAsync()
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	tp := t.TP(Shard(group, t.Partitions))
	l, ok := gc.leader(tp)
	if !ok {
		return nil, kerr.NotCoordinator.Code
	}
	gc.mu.Lock()
	if gc.ctx == nil {
		gc.mu.Unlock()
		return nil, kerr.NotCoordinator.Code
	}
	sh := gc.shards[tp]
	var old *shard
	if sh == nil || sh.lead.Epoch != l.Epoch {
		old = sh
		sh = gc.newShard(tp, l, t.Partitions)
		gc.shards[tp] = sh
	}
	gc.mu.Unlock()
	if old != nil {
		old.drop()
	}
	wait := time.NewTimer(gc.cfg.LoadWait)
	defer wait.Stop()
	select {
	case <-sh.ready:
	case <-wait.C:
		return nil, kerr.CoordinatorLoadInProgress.Code
	case <-ctx.Done():
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	if sh.loadErr != nil || sh.broken.Load() {
		return nil, kerr.NotCoordinator.Code
	}
	return sh, 0
}

// withGroup runs fn on a group under its lock, if this agent coordinates it, and returns 0; else the
// Kafka error. A group that does not exist is created if create is set; otherwise fn gets nil.
func (gc *Coordinator) withGroup(ctx context.Context, name string, create bool, fn func(g *group)) int16 {
	for range 3 {
		sh, code := gc.shardOf(ctx, name)
		if code != 0 {
			return code
		}
		g, code := sh.group(name, create)
		if code != 0 {
			return code
		}
		if g == nil {
			fn(nil)
			return 0
		}
		g.mu.Lock()
		if g.gone.Load() {
			code := g.deadCode
			g.mu.Unlock()
			if code != 0 {
				return code
			}
			continue // deleted or to be reloaded: look it up again
		}
		fn(g)
		forget := g.deleted || g.vacant()
		g.mu.Unlock()
		if forget {
			sh.forget(g)
		}
		return 0
	}
	return kerr.CoordinatorNotAvailable.Code
}

// shards lists the loaded shards this agent leads.
func (gc *Coordinator) loadedShards() []*shard {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	var out []*shard
	for _, sh := range gc.shards {
		select {
		case <-sh.ready:
			if l, ok := gc.leader(sh.tp); sh.loadErr == nil && !sh.broken.Load() && ok && l.Epoch == sh.lead.Epoch {
				out = append(out, sh)
			}
		default:
		}
	}
	return out
}

// shard is one coordinator shard this agent leads at one epoch, and its groups.
type shard struct {
	gc     *Coordinator
	tp     coord.TP
	lead   Leadership
	n      int32 // shards of the offsets topic when it was loaded
	fence  coord.GroupFence
	env    *groupEnv
	ctx    context.Context // ends when the shard is dropped
	cancel context.CancelFunc

	ready   chan struct{} // closed when the load is done
	loadErr error         // set before ready closes
	broken  atomic.Bool   // a write was fenced: the shard is no longer ours

	mu      sync.Mutex
	dropped bool
	groups  map[string]*group
}

// load reads the shard's groups, retrying until it succeeds or the shard is dropped.
func (sh *shard) load() {
	defer close(sh.ready)
	keep := func(name string) bool { return Shard(name, sh.n) == sh.tp.Partition }
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		snaps, err := sh.gc.store.LoadGroups(sh.ctx, sh.gc.ns, keep)
		if err == nil {
			sh.install(snaps)
			return
		}
		if sh.ctx.Err() != nil {
			sh.loadErr = err
			return
		}
		sh.gc.log.Warn("loading coordinator shard failed; retrying", "shard", sh.tp.Partition, "error", err)
		select {
		case <-time.After(delay):
		case <-sh.ctx.Done():
			sh.loadErr = sh.ctx.Err()
			return
		}
	}
}

func (sh *shard) install(snaps []coord.GroupSnapshot) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.dropped {
		return
	}
	for _, snap := range snaps {
		sh.groups[snap.Name] = restoreGroup(sh.env, snap)
	}
	sh.gc.log.Debug("coordinator shard loaded", "shard", sh.tp.Partition, "epoch", sh.fence.Epoch, "groups", len(snaps))
}

// drop ends the shard: its groups are killed, their members told NOT_COORDINATOR.
func (sh *shard) drop() {
	sh.cancel()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.dropped = true
	for _, g := range sh.groups {
		g.mu.Lock()
		g.kill(kerr.NotCoordinator.Code, kerr.NotCoordinator.Code)
		g.mu.Unlock()
	}
	sh.groups = nil
}

// group returns the live group object of name: loaded afresh from etcd if the last one was killed by a
// failed write, created if asked, nil if it does not exist.
func (sh *shard) group(name string, create bool) (*group, int16) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.dropped {
		return nil, kerr.NotCoordinator.Code
	}
	g := sh.groups[name]
	switch {
	case g != nil && !g.gone.Load():
		return g, 0
	case g != nil && !g.deleted:
		ctx, cancel := context.WithTimeout(sh.ctx, sh.gc.cfg.WriteTimeout)
		defer cancel()
		snap, err := sh.gc.store.LoadGroup(ctx, sh.gc.ns, name)
		if err != nil {
			return nil, kerr.CoordinatorNotAvailable.Code
		}
		g = restoreGroup(sh.env, snap)
		sh.groups[name] = g
		if g.vacant() && !create {
			delete(sh.groups, name)
			return nil, 0
		}
		return g, 0
	case !create:
		return nil, 0
	}
	g = newGroup(sh.env, name)
	sh.groups[name] = g
	return g, 0
}

// forget drops a deleted or vacant group object.
func (sh *shard) forget(g *group) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.groups[g.name] != g {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.deleted || g.vacant() {
		g.kill(kerr.UnknownMemberID.Code, 0)
		delete(sh.groups, g.name)
	}
}

// list returns the shard's live groups.
func (sh *shard) list() []*group {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	out := make([]*group, 0, len(sh.groups))
	for _, g := range sh.groups {
		if !g.gone.Load() {
			out = append(out, g)
		}
	}
	return out
}

// write is the groups' fenced write, based on the version of the group g holds (g.mu held), which
// it advances when the write succeeds.
func (sh *shard) write(g *group, w coord.GroupWrite) error {
	if sh.broken.Load() {
		return coord.ErrFenced
	}
	ctx, cancel := context.WithTimeout(sh.ctx, sh.gc.cfg.WriteTimeout)
	defer cancel()
	w.Version = g.version
	v, err := sh.gc.store.WriteGroup(ctx, sh.fence, sh.gc.ns, g.name, w)
	if err == nil {
		g.version = v
	}
	return err
}

// lose marks the shard lost after a fenced write; the sweep drops it and its leadership.
func (sh *shard) lose(err error) {
	if !sh.broken.Swap(true) {
		sh.gc.log.Warn("coordinator shard lost", "shard", sh.tp.Partition, "epoch", sh.fence.Epoch, "error", err)
	}
	sh.gc.kickSweep()
}

// retain expires the shard's committed offsets every retentionCheck, once it is loaded, until the
// shard is dropped.
func (sh *shard) retain() {
	select {
	case <-sh.ready:
	case <-sh.ctx.Done():
		return
	}
	tick := time.NewTicker(sh.gc.cfg.RetentionCheck)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			sh.expire(sh.gc.cfg.Now())
		case <-sh.ctx.Done():
			return
		}
	}
}

// expire deletes the offsets of the shard's groups that are past retention at now, and the groups
// left with nothing (group.expire). A fenced write stops it: the shard is no longer this agent's.
// It returns how many offsets and groups it deleted.
func (sh *shard) expire(now time.Time) (offsets, groups int) {
	select {
	case <-sh.ready:
	default:
		return 0, 0
	}
	if sh.loadErr != nil {
		return 0, 0
	}
	for _, g := range sh.list() {
		if sh.broken.Load() || sh.ctx.Err() != nil {
			break
		}
		g.mu.Lock()
		if g.gone.Load() {
			g.mu.Unlock()
			continue
		}
		n, err := g.expire(now, sh.gc.cfg.Retention)
		forget := g.deleted || g.vacant()
		g.mu.Unlock()
		if err != nil {
			continue // logged; the group was killed (see persist)
		}
		offsets += n
		if g.deleted {
			groups++
		}
		if forget {
			sh.forget(g)
		}
	}
	if offsets > 0 || groups > 0 {
		sh.gc.log.Info("expired committed offsets", "shard", sh.tp.Partition, "offsets", offsets, "groups", groups)
	}
	return offsets, groups
}
