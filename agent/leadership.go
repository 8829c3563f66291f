package agent

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/placement"
)

// acquireConcurrency bounds the partitions taken over at once after a membership change.
const acquireConcurrency = 16

// session is what the agent needs of its etcd session (coord.Session).
type session interface {
	Done() <-chan struct{}
	AcquireTopic(ctx context.Context, t coord.Topic, partition int32) (int64, error)
	Resign(ctx context.Context, tp coord.TP, epoch int64) error
	Commit(ctx context.Context, commits []coord.Commit) []error
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

// runLeadership keeps the partitions this agent leads equal to what placement gives it, and re-registers
// after the session is lost, until ctx ends.
func (a *Agent) runLeadership(ctx context.Context) {
	for {
		changed := a.cache.Changed()
		s := a.session()
		if s == nil {
			if !a.reregister(ctx) {
				return
			}
			continue
		}
		a.reconcile(ctx, s)
		select {
		case <-changed:
		case <-a.leadKick:
		case <-s.Done():
			if a.stopping.Load() {
				return // Shutdown closed the session: a hand-over, not a loss
			}
			a.sessionLost(s)
		case <-ctx.Done():
			return
		}
	}
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
		if a.leaders.remove(pl.tp, pl) != nil {
			a.dropLeaderMetrics(pl)
		}
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

// reconcile acquires the partitions placement gives this agent and resigns the others.
func (a *Agent) reconcile(ctx context.Context, s session) {
	want := a.desiredPartitions()
	a.resignOrphans(ctx, s, want)
	for _, pl := range a.leaders.snapshot() {
		if _, ok := want[pl.tp]; ok {
			delete(want, pl.tp)
			continue
		}
		if a.leaders.remove(pl.tp, pl) == nil {
			continue
		}
		a.dropLeaderMetrics(pl)
		if err := s.Resign(ctx, pl.tp, pl.epoch); err != nil && ctx.Err() == nil {
			a.log.Warn("resign failed", "topic", pl.topic, "partition", pl.tp.Partition, "error", err)
		}
	}
	sem := make(chan struct{}, acquireConcurrency)
	var wg sync.WaitGroup
	for tp, topic := range want {
		if a.stopping.Load() {
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a.takeLead(ctx, s, tp, topic)
		}()
	}
	wg.Wait()
}

// resignOrphans resigns the leader keys held in this agent's name for partitions it does not lead
// and placement no longer gives it. A failed commit or a failed load drops a partition's leader state
// but keeps its key, for the next reconcile to lead it again; if placement has meanwhile moved the
// partition, nothing else would let go of the key, and its new leader could not take it until this
// agent's lease ended. Resign is fenced by the epoch, so a stale view resigns nothing it should not.
func (a *Agent) resignOrphans(ctx context.Context, s session, want map[coord.TP]string) {
	for _, t := range a.cache.Topics() {
		for p := range t.Partitions {
			tp := t.TP(p)
			if _, ok := want[tp]; ok || a.leaders.get(tp) != nil {
				continue
			}
			holder, epoch, ok := a.cache.Leader(tp)
			if !ok || holder != a.cfg.ID {
				continue
			}
			if err := s.Resign(ctx, tp, epoch); err != nil && ctx.Err() == nil {
				a.log.Warn("resign of a partition no longer led failed", "topic", t.Name, "partition", p, "error", err)
			}
		}
	}
}

// takeLead becomes tp's leader: acquire the leader key (its create revision is the epoch), then load
// the partition's committed state. Only then does the partition take produce.
func (a *Agent) takeLead(ctx context.Context, s session, tp coord.TP, topic string) {
	prev, _, hadLeader := a.cache.Leader(tp)
	t, ok := a.cache.TopicByID(tp.Topic)
	if !ok {
		return // deleted since placement chose it
	}
	epoch, err := s.AcquireTopic(ctx, t, tp.Partition)
	if err != nil {
		if !errors.Is(err, coord.ErrLeaderHeld) && !errors.Is(err, coord.ErrUnknownTopic) && ctx.Err() == nil {
			a.log.Warn("acquire failed", "topic", topic, "partition", tp.Partition, "error", err)
		}
		return
	}
	next, producers, err := a.etcd.LoadPartition(ctx, tp)
	if err != nil {
		if ctx.Err() == nil {
			a.log.Warn("loading partition state failed", "topic", topic, "partition", tp.Partition, "error", err)
			a.kickLeadership()
		}
		return
	}
	pl := &partitionLeader{tp: tp, topic: topic, epoch: epoch, next: next,
		producers: make(map[int64]coord.ProducerState, len(producers))}
	for _, p := range producers {
		pl.producers[p.ID] = p
	}
	n := a.leaders.add(tp, pl)
	a.metrics.leasesHeld.Set(float64(n))
	if hadLeader && prev != a.cfg.ID {
		a.metrics.failovers.Inc()
	}
	a.metrics.partitionEpoch.WithLabelValues(topic, strconv.Itoa(int(tp.Partition))).Set(float64(epoch))
	a.metrics.partitionLeader.WithLabelValues(topic, strconv.Itoa(int(tp.Partition))).Set(1)
	a.log.Debug("leading partition", "topic", topic, "partition", tp.Partition, "epoch", epoch, "next_offset", next)
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
			if id, _, ok := a.cache.Leader(tp); ok {
				current[pp] = id
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
		if a.leaders.remove(pl.tp, pl) != nil {
			a.dropLeaderMetrics(pl)
			led = append(led, pl.tp)
		}
	}
	return led
}
