package agent

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// OffsetFetch: v0-8
//
// Committed offsets by topic name, from the coordinator's memory (loaded from etcd when it took the
// group's shard). A partition without a committed offset, of a group or a topic that does not exist,
// answers offset -1. Offsets are kept by topic id: those of a deleted topic are not reported, and a
// topic created again under the same name starts without offsets. RequireStable has nothing to wait
// for: there are no transactions.
//
// Version notes:
// * v1: offsets stored in the coordinator rather than ZooKeeper (the only kind here)
// * v2: null topics mean every committed offset; a group-level ErrorCode
// * v3: ThrottleMillis
// * v5: LeaderEpoch of each offset (KIP-320)
// * v6: flexible versions
// * v7: RequireStable (KIP-447)
// * v8: several groups in one request (KIP-709)

func (a *Agent) handleOffsetFetch(ctx context.Context, c client, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, a.fetchOffsets(ctx, rg))
		}
		return resp
	}
	rg := kmsg.NewOffsetFetchRequestGroup()
	rg.Group = req.Group
	if req.Topics != nil {
		rg.Topics = make([]kmsg.OffsetFetchRequestGroupTopic, 0, len(req.Topics))
	}
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetFetchRequestGroupTopic()
		rt.Topic, rt.Partitions = t.Topic, t.Partitions
		rg.Topics = append(rg.Topics, rt)
	}
	sg := a.fetchOffsets(ctx, rg)
	resp.ErrorCode = sg.ErrorCode
	for _, t := range sg.Topics {
		st := kmsg.NewOffsetFetchResponseTopic()
		st.Topic = t.Topic
		for _, p := range t.Partitions {
			sp := kmsg.NewOffsetFetchResponseTopicPartition()
			sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode = p.Partition, p.Offset, p.LeaderEpoch, p.Metadata, p.ErrorCode
			if req.Version < 2 && sg.ErrorCode != 0 {
				sp.ErrorCode = sg.ErrorCode // v0-1 have no group-level error
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// fetchOffsets answers one group's part.
func (a *Agent) fetchOffsets(ctx context.Context, rg kmsg.OffsetFetchRequestGroup) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = rg.Group
	var offs map[coord.TP]coord.GroupOffset
	sg.ErrorCode = a.groups.withGroup(ctx, rg.Group, false, func(g *group) {
		if g != nil {
			offs = make(map[coord.TP]coord.GroupOffset, len(g.offsets))
			for tp, o := range g.offsets {
				offs[tp] = o
			}
		}
	})
	if rg.Topics == nil {
		sg.Topics = a.allOffsets(offs)
		return sg
	}
	for _, rt := range rg.Topics {
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic = rt.Topic
		t, known := a.cache.Topic(rt.Topic)
		for _, p := range rt.Partitions {
			o, ok := offs[coord.TP{Topic: t.ID, Partition: p}]
			st.Partitions = append(st.Partitions, fetchedOffset(p, o, known && ok))
		}
		sg.Topics = append(sg.Topics, st)
	}
	return sg
}

// allOffsets lists every committed offset whose topic exists, by topic name and partition.
func (a *Agent) allOffsets(offs map[coord.TP]coord.GroupOffset) []kmsg.OffsetFetchResponseGroupTopic {
	byTopic := map[string][]coord.GroupOffset{}
	for _, o := range offs {
		if t, ok := a.cache.TopicByID(o.Topic); ok && o.Partition < t.Partitions {
			byTopic[t.Name] = append(byTopic[t.Name], o)
		}
	}
	out := make([]kmsg.OffsetFetchResponseGroupTopic, 0, len(byTopic))
	for name, os := range byTopic {
		slices.SortFunc(os, func(x, y coord.GroupOffset) int { return int(x.Partition - y.Partition) })
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic = name
		for _, o := range os {
			st.Partitions = append(st.Partitions, fetchedOffset(o.Partition, o, true))
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(x, y kmsg.OffsetFetchResponseGroupTopic) int { return strings.Compare(x.Topic, y.Topic) })
	return out
}

func fetchedOffset(p int32, o coord.GroupOffset, ok bool) kmsg.OffsetFetchResponseGroupTopicPartition {
	sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
	sp.Partition = p
	md := ""
	sp.Metadata = &md
	if !ok {
		sp.Offset, sp.LeaderEpoch = -1, -1
		return sp
	}
	md = o.Metadata
	sp.Offset, sp.LeaderEpoch = o.Offset, o.LeaderEpoch
	return sp
}
