package agent

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// CreatePartitions: v0-3
//
// Partition counts only grow (a count at or below the current one is INVALID_PARTITIONS, as is one
// above maxPartitionsPerTopic; growth past --max-partitions-per-request in one request, or the cluster's
// --max-partitions, is POLICY_VIOLATION). The check and the write are one compare-and-swap on the topic's etcd
// key, so two concurrent requests cannot both pass against the same count; ValidateOnly runs the same
// checks against the stored topic and writes nothing. Manual assignments are INVALID_REQUEST: placement
// decides leaders. The response waits, as CreateTopics does, until this agent's view shows the count.
//
// Version notes:
// * v1: no change (throttling applied after the response)
// * v2: flexible
// * v3: no change (KIP-599 quota errors, never sent)

func (a *Agent) handleCreatePartitions(ctx context.Context, c client, req *kmsg.CreatePartitionsRequest) kmsg.Response {
	return a.topicAdmin().createPartitions(ctx, req)
}

func (ta *topicAdmin) createPartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	dups := duplicated(len(req.Topics), func(i int) string { return req.Topics[i].Topic })
	answered := make(map[string]bool, len(req.Topics))
	grown := map[int]coord.Topic{} // response index → topic as updated
	reqErr := ta.checkRequestPartitions(ta.createPartitionsGrowth(req))
	for i := range req.Topics {
		rt := &req.Topics[i]
		if answered[rt.Topic] {
			continue
		}
		answered[rt.Topic] = true
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		var t coord.Topic
		var err error
		switch {
		case dups[rt.Topic]:
			err = adminErrorf(kerr.InvalidRequest, "topic %s appears more than once in the request", quoteShort(rt.Topic))
		case reqErr != nil:
			err = reqErr
		default:
			t, err = ta.growTopic(ctx, rt, req.ValidateOnly)
		}
		st.ErrorCode, st.ErrorMessage = ta.answer(err)
		if err == nil && !req.ValidateOnly {
			grown[len(resp.Topics)] = t
		}
		resp.Topics = append(resp.Topics, st)
	}
	ta.awaitGrown(ctx, ta.waitFor(req.TimeoutMillis), resp, grown)
	return resp
}

// growTopic raises one topic's partition count to rt.Count.
func (ta *topicAdmin) growTopic(ctx context.Context, rt *kmsg.CreatePartitionsRequestTopic, validateOnly bool) (coord.Topic, error) {
	if validateTopicName(rt.Topic) != nil {
		return coord.Topic{}, errUnknownTopic(rt.Topic)
	}
	if len(rt.Assignment) > 0 {
		return coord.Topic{}, adminErrorf(kerr.InvalidRequest,
			"manual replica assignment is not supported: StreamHouse places partition leaders itself")
	}
	if rt.Count > maxPartitionsPerTopic {
		return coord.Topic{}, adminErrorf(kerr.InvalidPartitions,
			"number of partitions must be at most %d, got %d", maxPartitionsPerTopic, rt.Count)
	}
	have := ta.clusterPartitions()
	t, err := ta.store.UpdateTopic(ctx, rt.Topic, func(t *coord.Topic) error {
		switch {
		case !ta.serves(*t):
			return errUnknownTopic(rt.Topic)
		case rt.Count < t.Partitions:
			return adminErrorf(kerr.InvalidPartitions,
				"topic currently has %d partitions, which is higher than the requested %d", t.Partitions, rt.Count)
		case rt.Count == t.Partitions:
			return adminErrorf(kerr.InvalidPartitions, "topic already has %d partitions", t.Partitions)
		}
		if err := ta.checkClusterPartitions(have, int64(rt.Count-t.Partitions)); err != nil {
			return err
		}
		switch {
		case validateOnly:
			return errDryRun
		}
		t.Partitions = rt.Count
		return nil
	})
	switch {
	case errors.Is(err, errDryRun):
		return coord.Topic{}, nil
	case errors.Is(err, coord.ErrUnknownTopic):
		return coord.Topic{}, errUnknownTopic(rt.Topic)
	}
	return t, err
}

// awaitGrown waits for the view to show the new partition counts and answers REQUEST_TIMED_OUT for
// topics it does not show in time.
func (ta *topicAdmin) awaitGrown(ctx context.Context, d time.Duration, resp *kmsg.CreatePartitionsResponse, grown map[int]coord.Topic) {
	shown := func(t coord.Topic) bool {
		v, ok := ta.view.Topic(t.Name)
		// Deleted or re-created meanwhile: nothing left to wait for.
		return !ok || v.ID != t.ID || v.Partitions >= t.Partitions
	}
	for _, i := range ta.awaitEach(ctx, d, grown, shown) {
		st := &resp.Topics[i]
		st.ErrorCode, st.ErrorMessage = ta.answer(errNotVisible("partitions of " + quoteShort(grown[i].Name) + " were created"))
	}
}
