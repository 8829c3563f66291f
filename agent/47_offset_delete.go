package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// OffsetDelete: v0
//
// Deletes committed offsets of a group (KIP-496): any of an Empty group's; of a consumer group with
// members, those of topics it does not subscribe to (GROUP_SUBSCRIBED_TO_TOPIC otherwise); none of
// another group with members (NON_EMPTY_GROUP).

func (a *Agent) handleOffsetDelete(ctx context.Context, c client, req *kmsg.OffsetDeleteRequest) kmsg.Response {
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
		t, ok := a.cache.Topic(rt.Topic)
		ok = ok && a.servesTopic(t)
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
	code := a.groups.withGroup(ctx, req.Group, false, func(g *group) {
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
