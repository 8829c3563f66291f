package agent

import (
	"context"
	"errors"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// Metadata: v0-12
//
// Brokers are the live agents of the client's agent group, their zone as rack. Each partition reports
// its true leader and epoch (the etcd create revision of its leader key), with the leader as the only
// replica: durability comes from S3, not from followers. A partition without a live leader answers
// LEADER_NOT_AVAILABLE, which clients retry. Topics bound to another agent group do not exist for
// this client.
//
// Version notes:
// * v1: null topics means all topics (v0: empty means all); ControllerID, IsInternal, Rack
// * v2: ClusterID
// * v4: AllowAutoTopicCreation
// * v5: OfflineReplicas
// * v7: LeaderEpoch
// * v8: authorized operations (not reported)
// * v9: flexible versions
// * v10: TopicID
// * v11: cluster authorized operations removed
// * v12: topics by id

func (a *Agent) handleMetadata(ctx context.Context, c client, req *kmsg.MetadataRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	id := clusterID
	resp.ClusterID = &id
	resp.ControllerID = a.nodeID(a.cfg.ID)
	cz := clientZone(c.id, "")
	live := map[string]bool{}
	for _, ag := range a.brokersFor(c) {
		b := kmsg.NewMetadataResponseBroker()
		b.NodeID = a.nodeID(ag.ID)
		host, port, err := net.SplitHostPort(ag.Addr)
		if err != nil {
			continue
		}
		p, _ := strconv.Atoi(port)
		b.Host, b.Port = host, int32(p)
		if ag.AZ != "" {
			az := ag.AZ
			b.Rack = &az
		}
		resp.Brokers = append(resp.Brokers, b)
		live[ag.ID] = true
	}

	all := req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0)
	if all {
		for _, t := range a.cache.Topics() {
			if a.servesTopic(t) {
				resp.Topics = append(resp.Topics, a.metadataTopic(t, live, cz))
			}
		}
		return resp
	}
	for _, rt := range req.Topics {
		t, code := a.metadataLookup(ctx, req, rt)
		if code != 0 {
			st := kmsg.NewMetadataResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			st.ErrorCode = code
			resp.Topics = append(resp.Topics, st)
			continue
		}
		resp.Topics = append(resp.Topics, a.metadataTopic(t, live, cz))
	}
	return resp
}

// metadataLookup finds a requested topic by id or name, creating it when auto-creation is on, or
// returns the topic-level error to answer instead. A topic being auto-created whose partitions are not
// all led yet is LEADER_NOT_AVAILABLE with no partitions, as Kafka answers an auto-create: clients ask
// again.
func (a *Agent) metadataLookup(ctx context.Context, req *kmsg.MetadataRequest, rt kmsg.MetadataRequestTopic) (coord.Topic, int16) {
	if rt.Topic == nil {
		t, ok := a.cache.TopicByID(coord.TopicID(rt.TopicID))
		if !ok || !a.servesTopic(t) {
			if req.Version >= 12 {
				return coord.Topic{}, kerr.UnknownTopicID.Code
			}
			return coord.Topic{}, kerr.UnknownTopicOrPartition.Code
		}
		return t, 0
	}
	if t, ok := a.cache.Topic(*rt.Topic); ok {
		if !a.servesTopic(t) {
			return coord.Topic{}, kerr.UnknownTopicOrPartition.Code
		}
		return t, 0
	}
	if validateTopicName(*rt.Topic) != nil {
		return coord.Topic{}, kerr.InvalidTopicException.Code
	}
	allow := req.Version < 4 || req.AllowAutoTopicCreation
	if !a.cfg.AutoCreateTopics || !allow {
		return coord.Topic{}, kerr.UnknownTopicOrPartition.Code
	}
	t, err := a.autoCreateTopic(ctx, *rt.Topic)
	if errors.Is(err, kerr.LeaderNotAvailable) {
		return coord.Topic{}, kerr.LeaderNotAvailable.Code
	}
	if err != nil {
		a.log.Warn("auto topic creation failed", "topic", *rt.Topic, "error", err)
		return coord.Topic{}, kerr.UnknownTopicOrPartition.Code
	}
	return t, 0
}

// metadataTopic describes t to a client of zone cz (empty when unknown).
func (a *Agent) metadataTopic(t coord.Topic, live map[string]bool, cz string) kmsg.MetadataResponseTopic {
	st := kmsg.NewMetadataResponseTopic()
	name := t.Name
	st.Topic, st.TopicID = &name, t.ID
	st.IsInternal = isInternalTopic(t.Name)
	for p := range t.Partitions {
		sp := kmsg.NewMetadataResponseTopicPartition()
		sp.Partition = p
		leader, epoch, ok := a.metadataLeader(coord.TP{Topic: t.ID, Partition: p}, st.IsInternal, live, cz)
		if ok {
			node := a.nodeID(leader)
			sp.Leader, sp.LeaderEpoch = node, epoch
			sp.Replicas, sp.ISR = []int32{node}, []int32{node}
		} else {
			sp.Leader, sp.LeaderEpoch = -1, -1
			sp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		st.Partitions = append(st.Partitions, sp)
	}
	return st
}

// metadataLeader is the live agent Metadata names as tp's leader to a client of zone cz, with the
// leader epoch: the true leader, or where produceTarget sends the client. A partition without a live
// leader (between leaders) is still named, to a client of a zone with a live agent, as that agent,
// with the last leader's epoch (-1 if none): reported leaderless, a new client's franz-go parks the
// partition on its first seed broker, of whatever zone, and can send it the partition's records
// there. The agent named answers their produce NOT_LEADER_OR_FOLLOWER until the partition has a
// leader again (handleProduce), and serves its fetches meanwhile, so the client retries in its zone.
func (a *Agent) metadataLeader(tp coord.TP, internal bool, live map[string]bool, cz string) (string, int32, bool) {
	l, ok := a.cache.Leader(tp)
	leader := l.Agent
	if ok && !internal {
		leader, ok = a.produceTarget(cz, tp, leader, live)
	}
	if ok && live[leader] {
		return leader, l.Epoch, true
	}
	if internal || cz == "" {
		return "", -1, false
	}
	ag, in := a.inZoneReplica(cz, tp)
	if !in || !live[ag.ID] {
		return "", -1, false
	}
	if l.Agent == "" {
		l.Epoch = -1
	}
	return ag.ID, l.Epoch, true
}

// produceTarget is the agent a client of zone cz is told leads tp, whose true leader is leader. Any
// agent takes produce for a partition that has a live leader: it writes the bytes to S3 itself and
// forwards only the sequencing to the leader. So a client of a zone with agents is told one of them,
// and record bytes stay in its zone; a client that names no zone, or one whose zone has no live agent
// (counted as a fallback), is told the true leader, or, when that agent is of another agent group, an
// agent of the client's group.
func (a *Agent) produceTarget(cz string, tp coord.TP, leader string, live map[string]bool) (string, bool) {
	if _, ok := a.agentAddr(leader); !ok {
		return "", false // no live leader: nobody can sequence
	}
	if _, ok := a.agentInternalAddr(leader); !ok {
		// No agent can forward to it (it is of an earlier version): only it takes produce.
		return leader, live[leader]
	}
	if cz != "" {
		if ag, ok := a.inZoneReplica(cz, tp); ok {
			return ag.ID, true
		}
		a.metrics.zones.produceFallbacks.Inc() // whatever follows is of another zone
	}
	if live[leader] {
		return leader, true
	}
	if ag, ok := a.inZoneReplica(a.cfg.AZ, tp); ok {
		return ag.ID, true
	}
	return a.cfg.ID, true
}
