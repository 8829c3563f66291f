package agent

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/streamhouse/streamhouse/agent/internal/lifecycle"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/placement"
)

// acquireConcurrency bounds the partitions taken over at once after a membership change.
const acquireConcurrency = 16

// session is what the agent needs of its etcd session (coord.Session).
type session interface {
	Done() <-chan struct{}
	AcquireTopic(ctx context.Context, t coord.Topic, partition int32, hint coord.EpochHint) (coord.Leadership, error)
	Resign(ctx context.Context, tp coord.TP, epoch int64) error
	Commit(ctx context.Context, commits []coord.Commit) []error
	CommitMarkers(ctx context.Context, guard coord.TxnGuard, ms []coord.MarkerCommit) []error
	lifecycle.Writer // a led partition's maintenance writes
	CampaignGC(ctx context.Context) (bool, error)
	Close(ctx context.Context) error
	Abandon()
}

// leadership is this agent's hold on partitions over its etcd session, as concurrency.Election is over a
// concurrency.Session: the session itself (replaced when it is lost and the agent registers again),
// the partitions it leads with their sequencing state, and the loop that keeps them equal to what
// placement gives the agent. Produce, fetch, the sequencer and the coordinators ask it whether a
// partition is led and drop a partition whose write failed; only its loop acquires.
type leadership struct {
	id           string // the agent's
	view         *coord.Cache
	log          hclog.Logger
	metrics      *metrics
	maxProducers int                             // Config.MaxProducerIDsPerPartition
	forget       func(coord.TP)                  // drops a partition's maintenance state
	register     func(ctx context.Context) error // registers the agent on a new session (setSession)
	fail         func(error)                     // stops the agent: its id is live elsewhere
	stopping     *atomic.Bool                    // a graceful shutdown is under way

	mu      sync.Mutex
	sess    session // nil while lost
	leaders leaderSet
	renew   renewals // partitions to lead again only under a new epoch
	kicks   chan struct{}
}

func newLeadership(a *Agent) *leadership {
	return &leadership{id: a.cfg.ID, view: a.cache, log: a.log, metrics: a.metrics,
		maxProducers: a.cfg.MaxProducerIDsPerPartition, forget: a.maintainer.Forget, register: a.register,
		fail: a.fail, stopping: &a.stopping,
		leaders: leaderSet{m: make(map[coord.TP]*partitionLeader)}, kicks: make(chan struct{}, 1)}
}

// setSession makes s the session partitions are led on (a registration) and wakes the loop.
func (l *leadership) setSession(s session) {
	l.mu.Lock()
	l.sess = s
	l.mu.Unlock()
	l.metrics.agentUp.Set(1)
	l.kick()
}

func (l *leadership) session() session {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sess
}

// leading returns this agent's leader state of tp, or nil when it does not lead tp. An agent whose
// session is lost leads nothing, from that moment on: not only once the leadership loop has dropped
// its partitions, which waits while that loop is busy (an Acquire blocked on an unreachable etcd).
func (l *leadership) leading(tp coord.TP) *partitionLeader {
	s := l.session()
	if s == nil {
		return nil
	}
	select {
	case <-s.Done():
		return nil
	default:
	}
	return l.leaders.get(tp)
}

func (l *leadership) kick() {
	select {
	case l.kicks <- struct{}{}:
	default:
	}
}

// Pauses before the leadership loop runs again after one of its etcd calls failed (an acquisition, a
// resignation, a partition load): doubled after each pass that fails, back to the first after one
// that does not. Without them the loop would wake only when topics, agents or leader keys change, and
// a partition whose acquisition failed (etcd refusing writes for a moment) would stay unled, its key
// kept, until something unrelated changed.
const (
	minLeadRetry = 100 * time.Millisecond
	maxLeadRetry = 2 * time.Second
)

// run keeps the partitions this agent leads equal to what placement gives it, and re-registers
// after the session is lost, until ctx ends.
func (l *leadership) run(ctx context.Context) {
	var delay time.Duration // the pause before the next retry; 0 after a pass with no failure
	for {
		changed := l.view.Changed()
		s := l.session()
		if s == nil {
			delay = 0
			if !l.reregister(ctx) {
				return
			}
			continue
		}
		var retry *time.Timer
		if l.reconcile(ctx, s) {
			delay = 0
		} else if ctx.Err() == nil {
			delay = min(max(2*delay, minLeadRetry), maxLeadRetry)
			l.metrics.leadRetries.Inc()
			retry = time.NewTimer(delay)
		}
		if !l.awaitWork(ctx, s, changed, retry) {
			return
		}
	}
}

// awaitWork waits until the leadership loop has something to do: the watched view changed,
// a kick, the retry timer (nil: none) fired, or the session was lost. It returns false when the loop
// must end.
func (l *leadership) awaitWork(ctx context.Context, s session, changed <-chan struct{}, retry *time.Timer) bool {
	var fired <-chan time.Time
	if retry != nil {
		defer retry.Stop()
		fired = retry.C
	}
	select {
	case <-changed:
	case <-l.kicks:
	case <-fired:
	case <-s.Done():
		if l.stopping.Load() {
			return false // Shutdown closed the session: a hand-over, not a loss
		}
		l.sessionLost(s)
	case <-ctx.Done():
		return false
	}
	return true
}

// sessionLost drops every leadership at once: from here on produce for those partitions is refused and
// buffered appends fail at sequencing; the commit fence would refuse them anyway.
func (l *leadership) sessionLost(s session) {
	l.metrics.agentUp.Set(0)
	l.mu.Lock()
	if l.sess == s {
		l.sess = nil
	}
	l.mu.Unlock()
	for _, pl := range l.leaders.snapshot() {
		l.dropLeader(pl.tp, pl.epoch)
	}
	l.log.Error("etcd session lost: every partition leadership dropped; registering again")
}

// reregister registers the agent again after its session was lost, retrying until it succeeds or ctx
// ends. A live registration of the same id elsewhere is fatal.
func (l *leadership) reregister(ctx context.Context) bool {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := l.register(ctx)
		if err == nil {
			l.log.Info("registered again after session loss")
			return true
		}
		if errors.Is(err, coord.ErrAgentIDInUse) {
			l.fail(err)
			return false
		}
		l.log.Warn("registration failed; retrying", "error", err, "in", delay)
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return false
		}
	}
}

// reconcile acquires the partitions placement gives this agent and resigns the others. It reports
// false when an etcd call failed other than by finding a partition led by another agent: the loop
// then runs it again after a pause.
func (l *leadership) reconcile(ctx context.Context, s session) bool {
	want := l.desiredPartitions()
	clean := l.resignOrphans(ctx, s, want)
	for _, pl := range l.leaders.snapshot() {
		if _, ok := want[pl.tp]; ok {
			delete(want, pl.tp)
			continue
		}
		if l.dropLeader(pl.tp, pl.epoch) == nil {
			continue
		}
		// A failed resignation leaves the key in this agent's name: resignOrphans tries again.
		if err := s.Resign(ctx, pl.tp, pl.epoch); err != nil && ctx.Err() == nil {
			l.log.Warn("resign failed; retrying", "topic", pl.topic, "partition", pl.tp.Partition, "error", err)
			clean = false
		}
	}
	sem := make(chan struct{}, acquireConcurrency)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for tp, topic := range want {
		if l.stopping.Load() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !l.takeLead(ctx, s, tp, topic) {
				failed.Store(true)
			}
		}()
	}
	wg.Wait()
	return clean && !failed.Load()
}

// resignOrphans resigns the leader keys held in this agent's name for partitions it does not lead
// and placement no longer gives it. A failed commit or a failed load drops a partition's leader state
// but keeps its key, for the next reconcile to lead it again; if placement has meanwhile moved the
// partition, nothing else would let go of the key, and its new leader could not take it until this
// agent's lease ended. Resign is fenced by the epoch, so a stale view resigns nothing it should not.
// It reports false when a resignation failed.
func (l *leadership) resignOrphans(ctx context.Context, s session, want map[coord.TP]string) bool {
	ok := true
	for _, t := range l.view.Topics() {
		for p := range t.Partitions {
			tp := t.TP(p)
			if _, ok := want[tp]; ok || l.leaders.get(tp) != nil {
				continue
			}
			ld, ok := l.view.Leader(tp)
			if !ok || ld.Agent != l.id {
				continue
			}
			if err := s.Resign(ctx, tp, ld.Rev); err != nil && ctx.Err() == nil {
				l.log.Warn("resign of a partition no longer led failed; retrying", "topic", t.Name, "partition", p, "error", err)
				ok = false
			}
		}
	}
	return ok
}

// takeLoadTimeout bounds how long a new leader waits for its view to reach its leader key's revision.
const takeLoadTimeout = 10 * time.Second

// takeLead becomes tp's leader: acquire the leader key (its create revision is the fencing epoch; the
// acquisition also gives the partition its next client-facing leader epoch), then take the partition's
// committed state from the view once it reflects that revision: no commit of an older epoch can apply
// after it (docs/INTERNALS.md, "A new leader takes over from the view"). Only then does the partition
// take produce. It reports false when an etcd call failed, or the view did not get there in time, for
// the leadership loop to try again; a key held by another agent is no failure (its deletion wakes the
// loop).
func (l *leadership) takeLead(ctx context.Context, s session, tp coord.TP, topic string) bool {
	if !l.renewEpoch(ctx, s, tp, topic) {
		return false
	}
	prev, hadLeader := l.view.Leader(tp)
	t, ok := l.view.TopicByID(tp.Topic)
	if !ok {
		return true // deleted since placement chose it
	}
	ld, err := s.AcquireTopic(ctx, t, tp.Partition, l.view.EpochHint(tp))
	if errors.Is(err, coord.ErrLeaderHeld) || errors.Is(err, coord.ErrUnknownTopic) {
		return true // another agent's, or the topic is gone: nothing to retry
	}
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("acquire failed; retrying", "topic", topic, "partition", tp.Partition, "error", err)
		}
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, takeLoadTimeout)
	err = l.view.WaitRevision(wctx, ld.Rev)
	cancel()
	st, ok := l.view.PartitionState(tp)
	if err != nil || !ok {
		if ctx.Err() == nil && ok {
			l.log.Warn("the view did not reach the leader key's revision; retrying", "topic", topic, "partition", tp.Partition,
				"revision", ld.Rev, "error", err)
		}
		return !ok // a topic deleted meanwhile is no failure
	}
	producers, _ := lifecycle.RecentProducers(st.Producers, l.maxProducers)
	pl := &partitionLeader{tp: tp, topic: topic, epoch: ld.Rev, clientEpoch: ld.Epoch, next: st.Next,
		producers: make(map[int64]coord.ProducerState, len(producers))}
	for _, p := range producers {
		pl.producers[p.ID] = p
	}
	n := l.leaders.add(tp, pl)
	l.metrics.leasesHeld.Set(float64(n))
	if hadLeader && prev.Agent != l.id {
		l.metrics.failovers.Inc()
	}
	l.metrics.partitionEpoch.WithLabelValues(topic, strconv.Itoa(int(tp.Partition))).Set(float64(ld.Epoch))
	l.metrics.partitionLeader.WithLabelValues(topic, strconv.Itoa(int(tp.Partition))).Set(1)
	l.log.Debug("leading partition", "topic", topic, "partition", tp.Partition, "epoch", ld.Epoch, "rev", ld.Rev, "next_offset", st.Next)
	return true
}

// renewals are the partitions whose leader key this agent must resign, by the fencing epoch to resign,
// before it leads them again: a commit of theirs has an unknown outcome, and an attempt of it may still
// be queued in etcd under that epoch. Sequencing again under it could give two entries one offset;
// once the key is created anew, the queued attempt fails its compare (docs/INTERNALS.md, "Offsets are
// unique").
type renewals struct {
	mu sync.Mutex
	m  map[coord.TP]int64
}

func (r *renewals) add(tp coord.TP, epoch int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[coord.TP]int64{}
	}
	r.m[tp] = epoch
}

func (r *renewals) take(tp coord.TP) (int64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	epoch, ok := r.m[tp]
	delete(r.m, tp)
	return epoch, ok
}

// renewEpoch resigns tp's leader key if a commit of unknown outcome left its epoch spent, so that the
// acquisition after it creates the key anew. Resign is fenced by the epoch: a key already lost, or
// taken again since, is left alone. It reports false when the resignation failed (tried again).
func (l *leadership) renewEpoch(ctx context.Context, s session, tp coord.TP, topic string) bool {
	epoch, ok := l.renew.take(tp)
	if !ok {
		return true
	}
	if err := s.Resign(ctx, tp, epoch); err != nil {
		l.renew.add(tp, epoch)
		if ctx.Err() == nil {
			l.log.Warn("renewing the leader epoch after a commit of unknown outcome: resign failed; retrying",
				"topic", topic, "partition", tp.Partition, "epoch", epoch, "error", err)
		}
		return false
	}
	l.log.Info("leader key resigned after a commit of unknown outcome, to lead under a new epoch",
		"topic", topic, "partition", tp.Partition, "epoch", epoch)
	return true
}

// desiredPartitions is what placement gives this agent, from the cached view of agents and topics.
func (l *leadership) desiredPartitions() map[coord.TP]string {
	var agents []placement.Agent
	for _, ag := range l.view.Agents() {
		agents = append(agents, placement.Agent{ID: ag.ID, Zone: ag.AZ, Group: ag.Group})
	}
	var parts []placement.Partition
	current := map[placement.Partition]string{}
	byKey := map[placement.Partition]coord.TP{}
	for _, t := range l.view.Topics() {
		group := t.Configs[configAgentGroup]
		for p := range t.Partitions {
			pp := placement.Partition{Topic: t.Name, Partition: p, Group: group}
			tp := coord.TP{Topic: t.ID, Partition: p}
			parts = append(parts, pp)
			byKey[pp] = tp
			if ld, ok := l.view.Leader(tp); ok {
				current[pp] = ld.Agent
			}
		}
	}
	want := map[coord.TP]string{}
	for pp, id := range placement.Leaders(agents, parts, current) {
		if id == l.id {
			want[byKey[pp]] = pp.Topic
		}
	}
	return want
}

// releaseAll drops every leadership this agent holds, at shutdown. It writes nothing to etcd: closing
// the session next revokes the lease, which deletes every leader key and the registration in one step,
// so successors see the whole handover at once instead of one resignation per partition. It returns the
// partitions it dropped.
func (l *leadership) releaseAll() []coord.TP {
	var led []coord.TP
	for _, pl := range l.leaders.snapshot() {
		if l.dropLeader(pl.tp, pl.epoch) != nil {
			led = append(led, pl.tp)
		}
	}
	return led
}

// dropLeader stops leading tp if this agent leads it at epoch, and forgets what it kept and reported for
// it (maintenance state, the partition's leader and epoch gauges). It returns the dropped leader, or nil
// when tp was not led at that epoch (dropped already, or led again since).
func (l *leadership) dropLeader(tp coord.TP, epoch int64) *partitionLeader {
	pl := l.leaders.remove(tp, epoch)
	if pl == nil {
		return nil
	}
	l.forget(pl.tp)
	l.metrics.partitionEpoch.DeleteLabelValues(pl.topic, strconv.Itoa(int(pl.tp.Partition)))
	l.metrics.partitionLeader.DeleteLabelValues(pl.topic, strconv.Itoa(int(pl.tp.Partition)))
	l.metrics.leasesHeld.Set(float64(len(l.leaders.snapshot())))
	return pl
}

// dropUntilReestablished drops tp's leadership at epoch after a failed or fenced write, logs why, and
// wakes the leadership loop, which leads it again under a new epoch (its state read afresh) or leaves
// it to the agent placement names.
func (l *leadership) dropUntilReestablished(tp coord.TP, epoch int64, why string, args ...any) {
	if pl := l.dropLeader(tp, epoch); pl != nil {
		l.log.Warn(why, append([]any{"topic", pl.topic, "partition", pl.tp.Partition, "epoch", pl.epoch}, args...)...)
		l.kick()
	}
}
