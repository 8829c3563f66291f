package agent

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

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
	lifecycle.Writer // a led partition's maintenance writes
	CampaignGC(ctx context.Context) (bool, error)
	Close(ctx context.Context) error
	Abandon()
}

func (a *Agent) session() session {
	a.sessMu.Lock()
	defer a.sessMu.Unlock()
	return a.sess
}

// leading returns this agent's leader state of tp, or nil when it does not lead tp. An agent whose
// session is lost leads nothing, from that moment on: not only once the leadership loop has dropped
// its partitions, which waits while that loop is busy (an Acquire blocked on an unreachable etcd).
func (a *Agent) leading(tp coord.TP) *partitionLeader {
	s := a.session()
	if s == nil {
		return nil
	}
	select {
	case <-s.Done():
		return nil
	default:
	}
	return a.leaders.get(tp)
}

func (a *Agent) kickLeadership() {
	select {
	case a.leadKick <- struct{}{}:
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

// runLeadership keeps the partitions this agent leads equal to what placement gives it, and re-registers
// after the session is lost, until ctx ends.
func (a *Agent) runLeadership(ctx context.Context) {
	var delay time.Duration // the pause before the next retry; 0 after a pass with no failure
	for {
		changed := a.cache.Changed()
		s := a.session()
		if s == nil {
			delay = 0
			if !a.reregister(ctx) {
				return
			}
			continue
		}
		var retry *time.Timer
		if a.reconcile(ctx, s) {
			delay = 0
		} else if ctx.Err() == nil {
			delay = min(max(2*delay, minLeadRetry), maxLeadRetry)
			a.metrics.leadRetries.Inc()
			retry = time.NewTimer(delay)
		}
		if !a.awaitLeadershipWork(ctx, s, changed, retry) {
			return
		}
	}
}

// awaitLeadershipWork waits until the leadership loop has something to do: the watched view changed,
// a kick, the retry timer (nil: none) fired, or the session was lost. It returns false when the loop
// must end.
func (a *Agent) awaitLeadershipWork(ctx context.Context, s session, changed <-chan struct{}, retry *time.Timer) bool {
	var fired <-chan time.Time
	if retry != nil {
		defer retry.Stop()
		fired = retry.C
	}
	select {
	case <-changed:
	case <-a.leadKick:
	case <-fired:
	case <-s.Done():
		if a.stopping.Load() {
			return false // Shutdown closed the session: a hand-over, not a loss
		}
		a.sessionLost(s)
	case <-ctx.Done():
		return false
	}
	return true
}

// sessionLost drops every leadership at once: from here on produce for those partitions is refused and
// buffered appends fail at sequencing; the commit fence would refuse them anyway.
func (a *Agent) sessionLost(s session) {
	a.metrics.agentUp.Set(0)
	a.sessMu.Lock()
	if a.sess == s {
		a.sess = nil
	}
	a.sessMu.Unlock()
	for _, pl := range a.leaders.snapshot() {
		a.dropLeader(pl.tp, pl.epoch)
	}
	a.log.Error("etcd session lost: every partition leadership dropped; registering again")
}

// reregister registers the agent again after its session was lost, retrying until it succeeds or ctx
// ends. A live registration of the same id elsewhere is fatal.
func (a *Agent) reregister(ctx context.Context) bool {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := a.register(ctx)
		if err == nil {
			a.log.Info("registered again after session loss")
			return true
		}
		if errors.Is(err, coord.ErrAgentIDInUse) {
			a.fail(err)
			return false
		}
		a.log.Warn("registration failed; retrying", "error", err, "in", delay)
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
func (a *Agent) reconcile(ctx context.Context, s session) bool {
	want := a.desiredPartitions()
	clean := a.resignOrphans(ctx, s, want)
	for _, pl := range a.leaders.snapshot() {
		if _, ok := want[pl.tp]; ok {
			delete(want, pl.tp)
			continue
		}
		if a.dropLeader(pl.tp, pl.epoch) == nil {
			continue
		}
		// A failed resignation leaves the key in this agent's name: resignOrphans tries again.
		if err := s.Resign(ctx, pl.tp, pl.epoch); err != nil && ctx.Err() == nil {
			a.log.Warn("resign failed; retrying", "topic", pl.topic, "partition", pl.tp.Partition, "error", err)
			clean = false
		}
	}
	sem := make(chan struct{}, acquireConcurrency)
	var wg sync.WaitGroup
	var failed atomic.Bool
	for tp, topic := range want {
		if a.stopping.Load() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if !a.takeLead(ctx, s, tp, topic) {
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
func (a *Agent) resignOrphans(ctx context.Context, s session, want map[coord.TP]string) bool {
	ok := true
	for _, t := range a.cache.Topics() {
		for p := range t.Partitions {
			tp := t.TP(p)
			if _, ok := want[tp]; ok || a.leaders.get(tp) != nil {
				continue
			}
			l, ok := a.cache.Leader(tp)
			if !ok || l.Agent != a.cfg.ID {
				continue
			}
			if err := s.Resign(ctx, tp, l.Rev); err != nil && ctx.Err() == nil {
				a.log.Warn("resign of a partition no longer led failed; retrying", "topic", t.Name, "partition", p, "error", err)
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
func (a *Agent) takeLead(ctx context.Context, s session, tp coord.TP, topic string) bool {
	if !a.renewEpoch(ctx, s, tp, topic) {
		return false
	}
	prev, hadLeader := a.cache.Leader(tp)
	t, ok := a.cache.TopicByID(tp.Topic)
	if !ok {
		return true // deleted since placement chose it
	}
	ld, err := s.AcquireTopic(ctx, t, tp.Partition, a.cache.EpochHint(tp))
	if errors.Is(err, coord.ErrLeaderHeld) || errors.Is(err, coord.ErrUnknownTopic) {
		return true // another agent's, or the topic is gone: nothing to retry
	}
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("acquire failed; retrying", "topic", topic, "partition", tp.Partition, "error", err)
		}
		return false
	}
	wctx, cancel := context.WithTimeout(ctx, takeLoadTimeout)
	err = a.cache.WaitRevision(wctx, ld.Rev)
	cancel()
	st, ok := a.cache.PartitionState(tp)
	if err != nil || !ok {
		if ctx.Err() == nil && ok {
			a.log.Warn("the view did not reach the leader key's revision; retrying", "topic", topic, "partition", tp.Partition,
				"revision", ld.Rev, "error", err)
		}
		return !ok // a topic deleted meanwhile is no failure
	}
	producers, _ := lifecycle.RecentProducers(st.Producers, a.cfg.MaxProducerIDsPerPartition)
	pl := &partitionLeader{tp: tp, topic: topic, epoch: ld.Rev, clientEpoch: ld.Epoch, next: st.Next,
		producers: make(map[int64]coord.ProducerState, len(producers))}
	for _, p := range producers {
		pl.producers[p.ID] = p
	}
	n := a.leaders.add(tp, pl)
	a.metrics.leasesHeld.Set(float64(n))
	if hadLeader && prev.Agent != a.cfg.ID {
		a.metrics.failovers.Inc()
	}
	a.metrics.partitionEpoch.WithLabelValues(topic, strconv.Itoa(int(tp.Partition))).Set(float64(ld.Epoch))
	a.metrics.partitionLeader.WithLabelValues(topic, strconv.Itoa(int(tp.Partition))).Set(1)
	a.log.Debug("leading partition", "topic", topic, "partition", tp.Partition, "epoch", ld.Epoch, "rev", ld.Rev, "next_offset", st.Next)
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
func (a *Agent) renewEpoch(ctx context.Context, s session, tp coord.TP, topic string) bool {
	epoch, ok := a.renew.take(tp)
	if !ok {
		return true
	}
	if err := s.Resign(ctx, tp, epoch); err != nil {
		a.renew.add(tp, epoch)
		if ctx.Err() == nil {
			a.log.Warn("renewing the leader epoch after a commit of unknown outcome: resign failed; retrying",
				"topic", topic, "partition", tp.Partition, "epoch", epoch, "error", err)
		}
		return false
	}
	a.log.Info("leader key resigned after a commit of unknown outcome, to lead under a new epoch",
		"topic", topic, "partition", tp.Partition, "epoch", epoch)
	return true
}

// desiredPartitions is what placement gives this agent, from the cached view of agents and topics.
func (a *Agent) desiredPartitions() map[coord.TP]string {
	var agents []placement.Agent
	for _, ag := range a.cache.Agents() {
		agents = append(agents, placement.Agent{ID: ag.ID, Zone: ag.AZ, Group: ag.Group})
	}
	var parts []placement.Partition
	current := map[placement.Partition]string{}
	byKey := map[placement.Partition]coord.TP{}
	for _, t := range a.cache.Topics() {
		group := t.Configs[configAgentGroup]
		for p := range t.Partitions {
			pp := placement.Partition{Topic: t.Name, Partition: p, Group: group}
			tp := coord.TP{Topic: t.ID, Partition: p}
			parts = append(parts, pp)
			byKey[pp] = tp
			if l, ok := a.cache.Leader(tp); ok {
				current[pp] = l.Agent
			}
		}
	}
	want := map[coord.TP]string{}
	for pp, id := range placement.Leaders(agents, parts, current) {
		if id == a.cfg.ID {
			want[byKey[pp]] = pp.Topic
		}
	}
	return want
}

// releaseAll drops every leadership this agent holds, at shutdown. It writes nothing to etcd: closing
// the session next revokes the lease, which deletes every leader key and the registration in one step,
// so successors see the whole handover at once instead of one resignation per partition. It returns the
// partitions it dropped.
func (a *Agent) releaseAll() []coord.TP {
	var led []coord.TP
	for _, pl := range a.leaders.snapshot() {
		if a.dropLeader(pl.tp, pl.epoch) != nil {
			led = append(led, pl.tp)
		}
	}
	return led
}

// dropLeader stops leading tp if this agent leads it at epoch, and forgets what it kept and reported for
// it (maintenance state, the partition's leader and epoch gauges). It returns the dropped leader, or nil
// when tp was not led at that epoch (dropped already, or led again since).
func (a *Agent) dropLeader(tp coord.TP, epoch int64) *partitionLeader {
	pl := a.leaders.remove(tp, epoch)
	if pl == nil {
		return nil
	}
	a.maintainer.Forget(pl.tp)
	a.metrics.partitionEpoch.DeleteLabelValues(pl.topic, strconv.Itoa(int(pl.tp.Partition)))
	a.metrics.partitionLeader.DeleteLabelValues(pl.topic, strconv.Itoa(int(pl.tp.Partition)))
	a.metrics.leasesHeld.Set(float64(len(a.leaders.snapshot())))
	return pl
}

// dropUntilReestablished drops tp's leadership at epoch after a failed or fenced write, logs why, and
// wakes the leadership loop, which leads it again under a new epoch (its state read afresh) or leaves
// it to the agent placement names.
func (a *Agent) dropUntilReestablished(tp coord.TP, epoch int64, why string, args ...any) {
	if pl := a.dropLeader(tp, epoch); pl != nil {
		a.log.Warn(why, append([]any{"topic", pl.topic, "partition", pl.tp.Partition, "epoch", pl.epoch}, args...)...)
		a.kickLeadership()
	}
}
