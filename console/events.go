package console

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// Kinds of events.
const (
	eventFailover  = "failover"     // a partition's leader left the cluster and another agent leads it now
	eventMoved     = "moved"        // a partition's leadership was handed to another agent (rebalance)
	eventAgentLeft = "agent left"   // an agent's registration went (lease expired, or it stopped)
	eventAgentJoin = "agent joined" // an agent registered
)

// event is one change the console saw in the view.
type event struct {
	At      time.Time
	Kind    string
	Subject string // topic/partition, or agent id
	Detail  string
	// Internal marks a partition of an offsets topic (a consumer group coordinator shard).
	Internal bool
}

// events is a ring of the latest events, and the agents that left lately. Both are bounded: the ring
// by max, the departed agents by goneFor (pruned at every change and every page view), so an agent
// that runs for months holds no more than that.
type events struct {
	mu      sync.Mutex
	max     int
	goneFor time.Duration
	list    []event // oldest first
	gone    map[string]goneAgent
}

// goneAgent is an agent that left, as last registered.
type goneAgent struct {
	info coord.AgentInfo
	at   time.Time
}

func newEvents(max int, goneFor time.Duration) *events {
	return &events{max: max, goneFor: goneFor, gone: map[string]goneAgent{}}
}

func (e *events) add(evs ...event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, evs...)
	if over := len(e.list) - e.max; over > 0 {
		e.list = append(e.list[:0], e.list[over:]...)
	}
}

// recent lists the events, newest first.
func (e *events) recent() []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]event, len(e.list))
	for i, ev := range e.list {
		out[len(e.list)-1-i] = ev
	}
	return out
}

// departed lists the agents that left within goneFor and have not come back, forgetting older ones.
func (e *events) departed(now time.Time) []goneAgent {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.prune(now)
	out := make([]goneAgent, 0, len(e.gone))
	for _, g := range e.gone {
		out = append(out, g)
	}
	return out
}

// prune forgets the agents that left more than goneFor ago. e.mu is held.
func (e *events) prune(now time.Time) {
	for id, g := range e.gone {
		if now.Sub(g.at) > e.goneFor {
			delete(e.gone, id)
		}
	}
}

// snapshot is what the console compares between two states of the view.
type snapshot struct {
	leaders map[string]leaderAt // by "topic/partition"
	agents  map[string]coord.AgentInfo
}

type leaderAt struct {
	agent string // "" without a leader
	epoch int64
}

func takeSnapshot(v View) snapshot {
	st := v.Status()
	s := snapshot{leaders: make(map[string]leaderAt, len(st.Partitions)), agents: map[string]coord.AgentInfo{}}
	for _, p := range st.Partitions {
		l := leaderAt{epoch: p.Epoch}
		if p.Leader != nil {
			l.agent = *p.Leader
		}
		s.leaders[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = l
	}
	for _, a := range v.Agents() {
		s.agents[a.ID] = a
	}
	return s
}

// diff records what changed from prev to cur. lastLeader keeps, across a spell without a leader, who
// led a partition last, so that A → none → B shows as one change from A to B.
func (e *events) diff(prev, cur snapshot, lastLeader map[string]leaderAt, now time.Time) {
	var evs []event
	for id, a := range prev.agents {
		if _, ok := cur.agents[id]; !ok {
			evs = append(evs, event{At: now, Kind: eventAgentLeft, Subject: id, Detail: zoneGroup(a)})
		}
	}
	for id, a := range cur.agents {
		if _, ok := prev.agents[id]; !ok {
			evs = append(evs, event{At: now, Kind: eventAgentJoin, Subject: id, Detail: zoneGroup(a)})
		}
	}
	for tp, l := range cur.leaders {
		// A spell without a leader between two leaders is one change, from the last to the new one:
		// a failover when the last leader's agent is gone, a move (rebalance, handover) when it is not.
		if last, led := lastLeader[tp]; l.agent != "" && led && last.agent != l.agent {
			kind := eventMoved
			if _, alive := cur.agents[last.agent]; !alive {
				kind = eventFailover
			}
			evs = append(evs, event{At: now, Kind: kind, Subject: tp, Internal: strings.HasPrefix(tp, offsetsTopic),
				Detail: fmt.Sprintf("%s → %s, epoch %d → %d", last.agent, l.agent, last.epoch, l.epoch)})
		}
		if l.agent != "" {
			lastLeader[tp] = l
		}
	}
	for tp := range lastLeader {
		if _, ok := cur.leaders[tp]; !ok {
			delete(lastLeader, tp) // the topic was deleted
		}
	}
	sortEvents(evs)
	e.mu.Lock()
	for id, a := range prev.agents {
		if _, ok := cur.agents[id]; !ok {
			e.gone[id] = goneAgent{info: a, at: now}
		}
	}
	for id := range cur.agents {
		delete(e.gone, id)
	}
	e.prune(now)
	e.mu.Unlock()
	e.add(evs...)
}

func zoneGroup(a coord.AgentInfo) string {
	return fmt.Sprintf("zone %s, group %s", orDash(a.AZ), orDash(a.Group))
}

// Run follows the view, recording failovers and agents leaving and joining, and samples the rates every
// second, until ctx ends. Call it once. The two run apart: a view that changes with every commit must
// not starve the charts of samples.
func (c *Console) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { c.sampleRates(ctx) })
	changed := c.cfg.View.Changed()
	prev := takeSnapshot(c.cfg.View)
	c.started.Store(true)
	last := map[string]leaderAt{}
	for tp, l := range prev.leaders {
		if l.agent != "" {
			last[tp] = l
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			changed = c.cfg.View.Changed()
			cur := takeSnapshot(c.cfg.View)
			c.events.diff(prev, cur, last, c.cfg.Now())
			prev = cur
		}
	}
}

// sampleRates samples the rates at once, then every sampleEvery until ctx ends. The first sample is the
// base of the first rate: taken a tick late, it would hide whatever the agent did in its first second
// (a burst of traffic right after start-up then never shows in the charts).
func (c *Console) sampleRates(ctx context.Context) {
	tick := c.sampleTick
	if tick == nil {
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		tick = t.C
	}
	for {
		c.rates.sample()
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
	}
}

// sortEvents orders the events of one change: agents first, then partitions by name, so that a page
// lists them the same way every time.
func sortEvents(evs []event) {
	slices.SortFunc(evs, func(a, b event) int {
		if c := strings.Compare(kindOrder(a.Kind), kindOrder(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.Subject, b.Subject)
	})
}

func kindOrder(k string) string {
	if strings.HasPrefix(k, "agent") {
		return "0" + k
	}
	return "1" + k
}
