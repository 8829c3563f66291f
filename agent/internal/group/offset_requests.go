package group

import (
	"context"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// OffsetCommit answers an OffsetCommit (agent/08_offset_commit.go says what each version adds).
func (gc *Coordinator) OffsetCommit(ctx context.Context, req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	setAll := func(code int16) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	if req.Group == "" {
		setAll(kerr.InvalidGroupID.Code)
		return resp
	}
	offs := gc.commitOffsets(req, resp)
	var e *kerr.Error
	code := gc.withGroup(ctx, req.Group, req.Generation < 0, func(g *group) {
		if g == nil { // a member's commit to a group this coordinator does not know
			e = kerr.IllegalGeneration
			return
		}
		m, ce := g.commitCheck(req)
		if ce != nil {
			e = ce
			return
		}
		if err := g.commit(m, offs); err != nil {
			e = kerr.ErrorForCode(g.failCode()).(*kerr.Error)
		}
	})
	if code != 0 {
		setAll(code)
	} else if e != nil {
		setAll(e.Code)
	}
	return resp
}

// commitOffsets resolves the partitions of a commit, answering those that cannot be committed.
func (gc *Coordinator) commitOffsets(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse) []coord.GroupOffset {
	now := gc.cfg.Now().UnixMilli()
	var offs []coord.GroupOffset
	for i, rt := range req.Topics {
		t, ok := gc.view.Topic(rt.Topic)
		ok = ok && gc.serves(t)
		for j, rp := range rt.Partitions {
			epoch := rp.LeaderEpoch
			if req.Version < 6 {
				epoch = -1
			}
			o, code := gc.offsetFor(t, ok, rp.Partition, rp.Offset, epoch, rp.Metadata, now)
			if resp.Topics[i].Partitions[j].ErrorCode = code; code == 0 {
				offs = append(offs, o)
			}
		}
	}
	return offs
}

// OffsetFetch answers an OffsetFetch (agent/09_offset_fetch.go says what each version adds).
func (gc *Coordinator) OffsetFetch(ctx context.Context, req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			resp.Groups = append(resp.Groups, gc.fetchOffsets(ctx, rg, req.RequireStable))
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
	sg := gc.fetchOffsets(ctx, rg, req.Version >= 7 && req.RequireStable)
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
// With stable (KIP-447's RequireStable), a partition with offsets of an open transaction pending
// answers UNSTABLE_OFFSET_COMMIT.
func (gc *Coordinator) fetchOffsets(ctx context.Context, rg kmsg.OffsetFetchRequestGroup, stable bool) kmsg.OffsetFetchResponseGroup {
	sg := kmsg.NewOffsetFetchResponseGroup()
	sg.Group = rg.Group
	var offs map[coord.TP]coord.GroupOffset
	var unstable map[coord.TP]bool
	sg.ErrorCode = gc.withGroup(ctx, rg.Group, false, func(g *group) {
		if g != nil {
			offs = make(map[coord.TP]coord.GroupOffset, len(g.offsets))
			for tp, o := range g.offsets {
				offs[tp] = o
			}
			if stable {
				unstable = g.unstable()
			}
		}
	})
	if rg.Topics == nil {
		sg.Topics = gc.allOffsets(offs)
		gc.markUnstable(sg.Topics, unstable)
		return sg
	}
	for _, rt := range rg.Topics {
		st := kmsg.NewOffsetFetchResponseGroupTopic()
		st.Topic = rt.Topic
		t, known := gc.view.Topic(rt.Topic)
		for _, p := range rt.Partitions {
			o, ok := offs[coord.TP{Topic: t.ID, Partition: p}]
			st.Partitions = append(st.Partitions, fetchedOffset(p, o, known && ok))
		}
		sg.Topics = append(sg.Topics, st)
	}
	gc.markUnstable(sg.Topics, unstable)
	return sg
}

// allOffsets lists every committed offset whose topic exists, by topic name and partition.
func (gc *Coordinator) allOffsets(offs map[coord.TP]coord.GroupOffset) []kmsg.OffsetFetchResponseGroupTopic {
	byTopic := map[string][]coord.GroupOffset{}
	for _, o := range offs {
		if t, ok := gc.view.TopicByID(o.Topic); ok && o.Partition < t.Partitions {
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

// OffsetDelete answers an OffsetDelete (agent/47_offset_delete.go says what each version adds).
func (gc *Coordinator) OffsetDelete(ctx context.Context, req *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	var tps []coord.TP
	var slots []*kmsg.OffsetDeleteResponseTopicPartition
	names := map[coord.TopicID]string{}
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	for i, rt := range req.Topics {
		t, ok := gc.view.Topic(rt.Topic)
		ok = ok && gc.serves(t)
		for j, rp := range rt.Partitions {
			sp := &resp.Topics[i].Partitions[j]
			if !ok || rp.Partition < 0 || rp.Partition >= t.Partitions {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				continue
			}
			names[t.ID] = t.Name
			tps = append(tps, t.TP(rp.Partition))
			slots = append(slots, sp)
		}
	}
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	var codes []int16
	var top int16
	code := gc.withGroup(ctx, req.Group, false, func(g *group) {
		if g == nil {
			top = kerr.GroupIDNotFound.Code
			return
		}
		codes, top = g.deleteOffsets(tps, names)
	})
	switch {
	case code != 0:
		resp.ErrorCode = code
	case top != 0:
		resp.ErrorCode = top
	default:
		for i, sp := range slots {
			sp.ErrorCode = codes[i]
		}
	}
	return resp
}

// offsetFor checks one partition of an offset commit (OffsetCommit or TxnOffsetCommit) against its
// topic t (known: found and served by this group's agents) and returns the offset to store, or the
// error code that answers the partition instead.
func (gc *Coordinator) offsetFor(t coord.Topic, known bool, partition int32, offset int64, epoch int32, metadata *string, now int64) (coord.GroupOffset, int16) {
	switch {
	case !known || partition < 0 || partition >= t.Partitions:
		return coord.GroupOffset{}, kerr.UnknownTopicOrPartition.Code
	case metadata != nil && len(*metadata) > gc.cfg.MaxMetadataBytes:
		return coord.GroupOffset{}, kerr.OffsetMetadataTooLarge.Code
	}
	o := coord.GroupOffset{Topic: t.ID, Partition: partition, Offset: offset, LeaderEpoch: epoch, CommitMs: now}
	if metadata != nil {
		o.Metadata = *metadata
	}
	return o, 0
}
