package group

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// Committed offsets and the group-wide deletions. Offsets are kept by topic id, as in etcd: a topic
// deleted and created again under its name starts without the old topic's offsets, as in Kafka,
// which drops a deleted topic's offsets. Every method runs under g.mu.

// commitCheck applies Kafka's rules for who may commit: anyone (an admin tool, a consumer without
// group management) when the group is Empty and the commit carries no generation; otherwise a member
// at the current generation, and not while its assignment is being synced.
func (g *group) commitCheck(req *kmsg.OffsetCommitRequest) (*member, *kerr.Error) {
	if req.Generation < 0 && g.state == groupEmpty {
		return nil, nil
	}
	var m *member
	if req.Generation >= 0 || req.MemberID != "" || req.InstanceID != nil {
		if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
			return nil, e
		}
		if m = g.members[req.MemberID]; m == nil {
			return nil, kerr.UnknownMemberID
		}
		if req.Generation != g.generation {
			return nil, kerr.IllegalGeneration
		}
	} else if g.state != groupEmpty {
		return nil, kerr.UnknownMemberID
	}
	if g.state == groupCompletingRebalance {
		return nil, kerr.RebalanceInProgress
	}
	return m, nil
}

// commit persists offsets (with the group's metadata, the first time) and then applies them. An
// error means nothing may be assumed committed; the group was killed (see persist).
func (g *group) commit(m *member, offs []coord.GroupOffset) error {
	if m != nil {
		g.touch(m)
	}
	if len(offs) == 0 {
		return nil
	}
	w := coord.GroupWrite{Offsets: offs}
	if !g.stored {
		w.Meta = g.meta()
	}
	if err := g.persist(w); err != nil {
		return err
	}
	for _, o := range offs {
		g.offsets[o.TP()] = o
	}
	return nil
}

// committedOffsets copies the group's offsets.
func (g *group) committedOffsets() []coord.GroupOffset {
	out := make([]coord.GroupOffset, 0, len(g.offsets))
	for _, o := range g.offsets {
		out = append(out, o)
	}
	return out
}

// deleteOffsets is OffsetDelete: an Empty group loses the offsets asked for; a consumer group with
// members keeps those of topics it subscribes to (GROUP_SUBSCRIBED_TO_TOPIC); another group with
// members keeps all (NON_EMPTY_GROUP). names gives each topic id's name. It returns a code per
// partition, or a code for the whole request.
func (g *group) deleteOffsets(tps []coord.TP, names map[coord.TopicID]string) ([]int16, int16) {
	var subscribed func(string) bool
	switch {
	case g.state == groupDead:
		return nil, kerr.GroupIDNotFound.Code
	case g.state == groupEmpty:
		subscribed = func(string) bool { return false }
	case g.protocolType != "consumer":
		return nil, kerr.NonEmptyGroup.Code
	default:
		subscribed = g.subscribedTopics()
	}
	codes := make([]int16, len(tps))
	var del []coord.TP
	asked := map[coord.TP]bool{}
	for i, tp := range tps {
		if subscribed(names[tp.Topic]) {
			codes[i] = kerr.GroupSubscribedToTopic.Code
			continue
		}
		asked[tp] = true
		if _, ok := g.offsets[tp]; ok {
			del = append(del, tp)
		}
	}
	w := coord.GroupWrite{DeleteOffsets: del}
	g.withoutPending(asked, &w)
	if len(del) == 0 && len(w.Pending) == 0 && len(w.DeletePending) == 0 {
		return codes, 0
	}
	if err := g.persist(w); err != nil {
		return nil, g.failCode()
	}
	for _, tp := range del {
		delete(g.offsets, tp)
	}
	for _, p := range w.Pending {
		g.txn[p.ProducerID] = p
	}
	for _, pid := range w.DeletePending {
		delete(g.txn, pid)
	}
	return codes, 0
}

// withoutPending adds to w what takes the partitions tps out of every producer's pending offsets, as
// Kafka's OffsetDelete does (its tombstone of a partition drops the pending transactional offsets of
// it too): a producer left with none has its pending offsets deleted.
func (g *group) withoutPending(tps map[coord.TP]bool, w *coord.GroupWrite) {
	for pid, p := range g.txn {
		keep := slices.DeleteFunc(slices.Clone(p.Offsets), func(o coord.GroupOffset) bool { return tps[o.TP()] })
		switch {
		case len(keep) == len(p.Offsets):
		case len(keep) == 0:
			w.DeletePending = append(w.DeletePending, pid)
		default:
			p.Offsets = keep
			w.Pending = append(w.Pending, p)
		}
	}
}

// subscribedTopics reads the members' consumer protocol subscriptions. If any cannot be read,
// every topic counts as subscribed: an offset is never deleted from under a consumer.
func (g *group) subscribedTopics() func(string) bool {
	topics := map[string]bool{}
	for _, m := range g.members {
		var cm kmsg.ConsumerMemberMetadata
		md := m.metadata(g.protocol)
		if g.protocol == "" && len(m.protocols) > 0 {
			md = m.protocols[0].Metadata
		}
		if cm.ReadFrom(md) != nil {
			return func(string) bool { return true }
		}
		for _, t := range cm.Topics {
			topics[t] = true
		}
	}
	return func(t string) bool { return topics[t] }
}

// deleteGroup is DeleteGroups for one group: only an Empty group is deleted, with its offsets.
func (g *group) deleteGroup() int16 {
	switch g.state {
	case groupDead:
		return kerr.GroupIDNotFound.Code
	case groupEmpty:
	default:
		return kerr.NonEmptyGroup.Code
	}
	if err := g.persist(coord.GroupWrite{Delete: true}); err != nil {
		return g.failCode()
	}
	g.kill(kerr.UnknownMemberID.Code, 0)
	g.deleted = true
	return 0
}

// expire applies offset retention (KIP-211) at now: only an Empty group's offsets expire. Those of a
// group that has had members (a protocol type) expire together, once it has been Empty for
// retention; those of a group that never had members (commits with generation -1 only) each once
// retention has passed since its commit. A group left with no offsets and no members is deleted, as
// Kafka removes it. The change is one fenced group write; it returns how many offsets it deleted.
func (g *group) expire(now time.Time, retention time.Duration) (int, error) {
	if retention <= 0 || g.state != groupEmpty || len(g.members) > 0 {
		return 0, nil
	}
	consumer := g.protocolType != ""
	if consumer && now.Sub(g.emptySince) < retention {
		return 0, nil
	}
	var del []coord.TP
	for tp, o := range g.offsets {
		if consumer || now.Sub(time.UnixMilli(o.CommitMs)) >= retention {
			del = append(del, tp)
		}
	}
	if len(del) == len(g.offsets) && len(g.pending) == 0 && len(g.txn) == 0 && (g.stored || len(del) > 0) {
		if err := g.persist(coord.GroupWrite{Delete: true}); err != nil {
			return 0, err
		}
		g.kill(kerr.UnknownMemberID.Code, 0)
		g.deleted = true
		g.offsets = map[coord.TP]coord.GroupOffset{}
		return len(del), nil
	}
	if len(del) == 0 {
		return 0, nil
	}
	if err := g.persist(coord.GroupWrite{DeleteOffsets: del}); err != nil {
		return 0, err
	}
	for _, tp := range del {
		delete(g.offsets, tp)
	}
	return len(del), nil
}
