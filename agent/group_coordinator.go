package agent

import (
	"context"
	"errors"
	"hash/fnv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
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

const (
	offsetsTopicName = "__consumer_offsets"
	// defaultGroupShards is the partition count of a new offsets topic. Groups hash over the count
	// the topic has, so it must not change afterwards (as Kafka's offsets.topic.num.partitions).
	defaultGroupShards = 16
)

// offsetsTopic is the offsets topic of an agent group.
func offsetsTopic(agentGroup string) string {
	if agentGroup == DefaultGroup {
		return offsetsTopicName
	}
	return offsetsTopicName + "." + agentGroup
}

// isInternalTopic reports whether a topic is an offsets topic, reported as internal in Metadata.
func isInternalTopic(name string) bool {
	return name == offsetsTopicName || strings.HasPrefix(name, offsetsTopicName+".")
}

// groupShard is the shard of a group among n: a stable hash, so every agent agrees.
func groupShard(group string, n int32) int32 {
	h := fnv.New32a()
	h.Write([]byte(group))
	return int32(h.Sum32() % uint32(n))
}

// groupConfig holds the coordinator's limits; Kafka's defaults.
type groupConfig struct {
	minSession       time.Duration // group.min.session.timeout.ms
	maxSession       time.Duration // group.max.session.timeout.ms
	maxMetadataBytes int           // offset.metadata.max.bytes
	maxSize          int           // group.max.size
	shards           int32         // partitions of a new offsets topic
	writeTimeout     time.Duration // one etcd write of a group
	loadWait         time.Duration // a request waits this long for its shard to load
	sweepEvery       time.Duration // leadership changes are also noticed by watching etcd
	reapEvery        time.Duration // groups holding nothing are forgotten this often
	retention        time.Duration // offsets.retention.minutes; 0: offsets never expire
	retentionCheck   time.Duration // offsets.retention.check.interval.ms
	now              func() time.Time
	limitHit         func(limit string) // counts a limit's refusal; nil in tests
}

func defaultGroupConfig() groupConfig {
	return groupConfig{
		minSession:       6 * time.Second,
		maxSession:       30 * time.Minute,
		maxMetadataBytes: 4096,
		maxSize:          DefaultGroupMaxSize,
		shards:           defaultGroupShards,
		writeTimeout:     10 * time.Second,
		loadWait:         5 * time.Second,
		sweepEvery:       250 * time.Millisecond,
		reapEvery:        time.Minute,
		retention:        DefaultOffsetsRetention,
		retentionCheck:   DefaultOffsetsCheck,
		now:              time.Now,
	}
}

// groupStore is what the coordinator needs of etcd (*coord.Client).
type groupStore interface {
	LoadGroups(ctx context.Context, ns string, keep func(group string) bool) ([]coord.GroupSnapshot, error)
	LoadGroup(ctx context.Context, ns, group string) (coord.GroupSnapshot, error)
	WriteGroup(ctx context.Context, f coord.GroupFence, ns, group string, w coord.GroupWrite) (version int64, err error)
	CreateTopic(ctx context.Context, t coord.Topic) (coord.Topic, error)
}

// groupView is what it reads of the watched view (*coord.Cache).
type groupView interface {
	Topic(name string) (coord.Topic, bool)
	TopicByID(id coord.TopicID) (coord.Topic, bool)
	HighWatermark(tp coord.TP) int64
	Changed() <-chan struct{}
}

// groupCoordinator serves the consumer groups of the shards this agent leads.
type groupCoordinator struct {
	cfg    groupConfig
	log    hclog.Logger
	ns     string // the agent group: consumer groups are its namespace
	topic  string // its offsets topic
	store  groupStore
	view   groupView
	leader func(coord.TP) *partitionLeader // the agent's leadership of a partition, nil if none
	// lost drops a leadership whose epoch a group write found fenced.
	lost   func(pl *partitionLeader)
	timers *timers
	kick   chan struct{}

	mu       sync.Mutex
	ctx      context.Context // set by run; nil before and after
	shards   map[coord.TP]*shard
	loaders  sync.WaitGroup
	creating bool // an offsets topic creation is under way
}

func newGroupCoordinator(a *Agent) *groupCoordinator {
	cfg := defaultGroupConfig()
	cfg.retention, cfg.retentionCheck = a.cfg.OffsetsRetention, a.cfg.OffsetsRetentionCheckInterval
	cfg.maxSize, cfg.limitHit = a.cfg.GroupMaxSize, a.limitHit
	gc := &groupCoordinator{
		cfg:    cfg,
		log:    a.log.Named("groups"),
		ns:     a.cfg.Group,
		topic:  offsetsTopic(a.cfg.Group),
		store:  a.etcd,
		view:   a.cache,
		leader: a.leading, // nothing once the session is lost, even before the leadership loop notices
		lost:   a.dropShardLeadership,
		timers: &timers{},
		kick:   make(chan struct{}, 1),
		shards: map[coord.TP]*shard{},
	}
	if a.cfg.Registerer != nil {
		a.cfg.Registerer.MustRegister(newGroupLagCollector(gc))
	}
	return gc
}

// dropShardLeadership gives up a coordinator shard whose group write was fenced, as a partition
// whose commit was fenced: leadership is re-established (or not) by the leadership loop.
func (a *Agent) dropShardLeadership(pl *partitionLeader) {
	if a.leaders.remove(pl.tp, pl) != nil {
		a.dropLeaderMetrics(pl)
		a.log.Warn("group write fenced; coordinator shard dropped until leadership is re-established",
			"topic", pl.topic, "partition", pl.tp.Partition, "epoch", pl.epoch)
		a.kickLeadership()
	}
}

// ensureTopic creates the offsets topic if it does not exist.
func (gc *groupCoordinator) ensureTopic(ctx context.Context) error {
	_, err := gc.store.CreateTopic(ctx, coord.Topic{Name: gc.topic, Partitions: gc.cfg.shards,
		Configs: map[string]string{configAgentGroup: gc.ns}})
	if err == nil {
		gc.log.Info("offsets topic created", "topic", gc.topic, "partitions", gc.cfg.shards)
	}
	if errors.Is(err, coord.ErrTopicExists) {
		return nil
	}
	return err
}

// ensureTopicAsync re-creates a missing offsets topic (someone deleted it) in the background.
func (gc *groupCoordinator) ensureTopicAsync() {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.ctx == nil || gc.creating {
		return
	}
	gc.creating = true
	ctx := gc.ctx
	gc.loaders.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, gc.cfg.writeTimeout)
		defer cancel()
		if err := gc.ensureTopic(cctx); err != nil && ctx.Err() == nil {
			gc.log.Warn("creating the offsets topic failed", "topic", gc.topic, "error", err)
		}
		gc.mu.Lock()
		gc.creating = false
		gc.mu.Unlock()
	})
}

// run keeps the loaded shards equal to the shards this agent leads, until ctx ends; then it drops
// them all and waits for every timer and loader.
func (gc *groupCoordinator) run(ctx context.Context) {
	gc.mu.Lock()
	gc.ctx = ctx
	gc.mu.Unlock()
	defer gc.shutdown()
	tick := time.NewTicker(gc.cfg.sweepEvery)
	defer tick.Stop()
	lastReap := time.Now()
	for {
		changed := gc.view.Changed()
		gc.sweep()
		if time.Since(lastReap) >= gc.cfg.reapEvery {
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
func (gc *groupCoordinator) reap() {
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

func (gc *groupCoordinator) kickSweep() {
	select {
	case gc.kick <- struct{}{}:
	default:
	}
}

// sweep drops the shards this agent no longer leads (or whose writes were fenced) and starts
// loading those it newly leads.
func (gc *groupCoordinator) sweep() {
	led := map[coord.TP]*partitionLeader{}
	t, ok := gc.view.Topic(gc.topic)
	if ok {
		for p := range t.Partitions {
			if pl := gc.leader(t.TP(p)); pl != nil {
				led[pl.tp] = pl
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
		if led[tp] != sh.pl || sh.broken.Load() {
			if sh.broken.Load() {
				gc.lost(sh.pl)
			}
			drop = append(drop, sh)
			delete(gc.shards, tp)
		}
	}
	for tp, pl := range led {
		if gc.shards[tp] == nil {
			gc.shards[tp] = gc.newShard(tp, pl, t.Partitions)
		}
	}
	gc.mu.Unlock()
	for _, sh := range drop {
		sh.drop()
	}
}

// shutdown drops every shard and waits for loaders and timers.
func (gc *groupCoordinator) shutdown() {
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
func (gc *groupCoordinator) newShard(tp coord.TP, pl *partitionLeader, n int32) *shard {
	ctx, cancel := context.WithCancel(gc.ctx)
	sh := &shard{gc: gc, tp: tp, pl: pl, n: n, fence: coord.GroupFence{Shard: tp, Epoch: pl.epoch},
		ctx: ctx, cancel: cancel, ready: make(chan struct{}), groups: map[string]*group{}}
	sh.env = &groupEnv{cfg: &gc.cfg, clock: gc.timers, log: gc.log, write: sh.write, lost: sh.lose}
	gc.loaders.Go(sh.load)
	if gc.cfg.retention > 0 {
		gc.loaders.Go(sh.retain)
	}
	return sh
}

// shardOf finds the loaded shard of a group at this agent, or the Kafka error to answer.
func (gc *groupCoordinator) shardOf(ctx context.Context, group string) (*shard, int16) {
	t, ok := gc.view.Topic(gc.topic)
	if !ok {
		gc.ensureTopicAsync()
		return nil, kerr.CoordinatorNotAvailable.Code
	}
	tp := t.TP(groupShard(group, t.Partitions))
	pl := gc.leader(tp)
	if pl == nil {
		return nil, kerr.NotCoordinator.Code
	}
	gc.mu.Lock()
	if gc.ctx == nil {
		gc.mu.Unlock()
		return nil, kerr.NotCoordinator.Code
	}
	sh := gc.shards[tp]
	var old *shard
	if sh == nil || sh.pl != pl {
		old = sh
		sh = gc.newShard(tp, pl, t.Partitions)
		gc.shards[tp] = sh
	}
	gc.mu.Unlock()
	if old != nil {
		old.drop()
	}
	wait := time.NewTimer(gc.cfg.loadWait)
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
func (gc *groupCoordinator) withGroup(ctx context.Context, name string, create bool, fn func(g *group)) int16 {
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
func (gc *groupCoordinator) loadedShards() []*shard {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	var out []*shard
	for _, sh := range gc.shards {
		select {
		case <-sh.ready:
			if sh.loadErr == nil && !sh.broken.Load() && gc.leader(sh.tp) == sh.pl {
				out = append(out, sh)
			}
		default:
		}
	}
	return out
}

// shard is one coordinator shard this agent leads at one epoch, and its groups.
type shard struct {
	gc     *groupCoordinator
	tp     coord.TP
	pl     *partitionLeader
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
	keep := func(name string) bool { return groupShard(name, sh.n) == sh.tp.Partition }
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
		ctx, cancel := context.WithTimeout(sh.ctx, sh.gc.cfg.writeTimeout)
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
	ctx, cancel := context.WithTimeout(sh.ctx, sh.gc.cfg.writeTimeout)
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
	tick := time.NewTicker(sh.gc.cfg.retentionCheck)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			sh.expire(sh.gc.cfg.now())
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
		n, err := g.expire(now, sh.gc.cfg.retention)
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
