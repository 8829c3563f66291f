package agent

import (
	"context"
	"time"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// awaitSuccessors waits until each of tps has a leader this agent can name to a client: one that is not
// this agent, or this agent leading it again. It gives up at the deadline, after handoverWait, or when no
// other agent is there to take over. It is false only when ctx ends.
//
// A client hinted with the leader it already knows (the same epoch) retries the same agent; franz-go does
// not even refresh its metadata then. Naming the successor at its new, higher epoch moves the client at
// once (KIP-951).
func (a *Agent) awaitSuccessors(ctx context.Context, tps []coord.TP, deadline time.Time) bool {
	if len(tps) == 0 {
		return true
	}
	if limit := time.Now().Add(handoverWait); limit.Before(deadline) {
		deadline = limit
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		changed, added := a.cache.Changed(), a.lead.leaders.addedChan()
		if !a.handoverPending(tps) {
			return true
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			return true
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		}
		select {
		case <-changed:
		case <-added: // this agent became the leader: the partition was still loading
		case <-timer.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
}

// handoverPending reports whether one of tps is between leaders, as far as this agent can tell: without a
// leader, or still under this agent's name while it does not lead it or is shutting down, and another
// agent of the group is there to take it.
func (a *Agent) handoverPending(tps []coord.TP) bool {
	if _, ok := a.otherAgent(); !ok {
		return false
	}
	stopping := a.stopping.Load()
	for _, tp := range tps {
		l, ok := a.cache.Leader(tp)
		if !ok || (l.Agent == a.cfg.ID && (stopping || a.lead.leading(tp) == nil)) {
			return true
		}
	}
	return false
}

// leaderHints names, in each NOT_LEADER_OR_FOLLOWER answer, the agent the client should produce to now
// (KIP-951, v10+), with its address, so that the client moves at once instead of waiting for its next
// metadata refresh — a handover then costs a client a retry, not its metadata refresh interval.
func (a *Agent) leaderHints(resp *kmsg.ProduceResponse, cz string) {
	var live map[string]bool
	added := map[string]bool{}
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		t, ok := a.cache.Topic(rt.Topic)
		for j := range rt.Partitions {
			sp := &rt.Partitions[j]
			if !ok || sp.ErrorCode != kerr.NotLeaderForPartition.Code {
				continue
			}
			if live == nil {
				live = map[string]bool{}
				for _, ag := range a.brokers() {
					live[ag.ID] = true
				}
			}
			tp := coord.TP{Topic: t.ID, Partition: sp.Partition}
			l, ok := a.cache.Leader(tp)
			if !ok {
				continue
			}
			target, ok := a.produceTarget(cz, tp, l.Agent, live)
			if ok && target == a.cfg.ID && a.stopping.Load() {
				target, ok = a.otherAgent() // going away: any other agent takes the produce and forwards it
			}
			if !ok || !live[target] {
				continue
			}
			sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = a.nodeID(target), l.Epoch
			if !added[target] {
				added[target] = true
				if b, ok := a.produceBroker(target); ok {
					resp.Brokers = append(resp.Brokers, b)
				}
			}
		}
	}
}

// otherAgent is another live agent of this agent's group, of its zone if there is one.
func (a *Agent) otherAgent() (string, bool) {
	other := ""
	for _, ag := range a.brokers() {
		switch {
		case ag.ID == a.cfg.ID:
		case ag.AZ == a.cfg.AZ:
			return ag.ID, true
		case other == "":
			other = ag.ID
		}
	}
	return other, other != ""
}
