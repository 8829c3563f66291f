package agent

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// DeleteTopics: v0-6
//
// Any agent deletes topics. A topic's index, producer states and leader keys go in the same etcd Txn
// (its leaders are fenced at once); its segment objects become garbage. The response waits, as
// CreateTopics does, until this agent's view no longer has the topics. An entry naming both a topic and
// an id, or neither, or one named twice in the request is INVALID_REQUEST; an unknown name is
// UNKNOWN_TOPIC_OR_PARTITION and an unknown id UNKNOWN_TOPIC_ID.
//
// Version notes:
// * v1: ThrottleMillis in response
// * v2: no change (throttling applied after the response)
// * v3: no change (TOPIC_DELETION_DISABLED, never sent)
// * v4: flexible
// * v5: ErrorMessage in response
// * v6: topics by name or TopicID (KIP-516); TopicID in response

func (a *Agent) handleDeleteTopics(ctx context.Context, c client, req *kmsg.DeleteTopicsRequest) kmsg.Response {
	return a.topicAdmin().deleteTopics(ctx, req)
}

// deleteKey identifies an entry of a DeleteTopics request: by name, or by id when the name is null.
type deleteKey struct {
	name   string
	byName bool
	id     coord.TopicID
}

func (ta *topicAdmin) deleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	topics := req.Topics
	if req.Version <= 5 {
		topics = make([]kmsg.DeleteTopicsRequestTopic, 0, len(req.TopicNames))
		for _, name := range req.TopicNames {
			rt := kmsg.NewDeleteTopicsRequestTopic()
			rt.Topic = &name
			topics = append(topics, rt)
		}
	}
	keyOf := func(rt *kmsg.DeleteTopicsRequestTopic) deleteKey {
		if rt.Topic != nil {
			return deleteKey{name: *rt.Topic, byName: true, id: rt.TopicID}
		}
		return deleteKey{id: rt.TopicID}
	}
	dups := duplicated(len(topics), func(i int) deleteKey { return keyOf(&topics[i]) })
	answered := make(map[deleteKey]bool, len(topics))
	deleted := map[int]coord.Topic{} // response index → deleted topic
	for i := range topics {
		rt := &topics[i]
		k := keyOf(rt)
		if answered[k] {
			continue
		}
		answered[k] = true
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		var t coord.Topic
		var err error
		if dups[k] {
			err = adminErrorf(kerr.InvalidRequest, "topic appears more than once in the request")
		} else {
			t, err = ta.deleteTopic(ctx, rt)
		}
		if err != nil {
			st.ErrorCode, st.ErrorMessage = ta.answer(err)
		} else {
			name := t.Name
			st.Topic, st.TopicID = &name, t.ID
			deleted[len(resp.Topics)] = t
		}
		resp.Topics = append(resp.Topics, st)
	}
	ta.awaitDeleted(ctx, ta.waitFor(req.TimeoutMillis), resp, deleted)
	return resp
}

// deleteTopic deletes one topic and returns what it knew of it (the id may be zero if the view had
// not seen the topic yet).
func (ta *topicAdmin) deleteTopic(ctx context.Context, rt *kmsg.DeleteTopicsRequestTopic) (coord.Topic, error) {
	var zero coord.TopicID
	var t coord.Topic
	switch {
	case rt.Topic != nil && rt.TopicID != zero:
		return t, adminErrorf(kerr.InvalidRequest, "give a topic's name or its id, not both")
	case rt.Topic == nil && rt.TopicID == zero:
		return t, adminErrorf(kerr.InvalidRequest, "neither a topic name nor a topic id given")
	case rt.Topic == nil:
		var ok bool
		if t, ok = ta.view.TopicByID(coord.TopicID(rt.TopicID)); !ok || !ta.serves(t) {
			return coord.Topic{}, errUnknownTopicID(rt.TopicID)
		}
	default:
		name := *rt.Topic
		if validateTopicName(name) != nil {
			return t, errUnknownTopic(name) // no such topic can exist
		}
		v, ok := ta.view.Topic(name)
		switch {
		case ok && !ta.serves(v):
			return t, errUnknownTopic(name)
		case ok:
			t = v
		default:
			t = coord.Topic{Name: name} // not seen yet: etcd knows
		}
	}
	// The view can lag etcd. By id, a topic it still shows was deleted, or deleted and re-created under
	// the same name, only moments ago; the rare re-created one is deleted too. coord cannot yet delete
	// "this name only if it has this id".
	err := ta.store.DeleteTopic(ctx, t.Name)
	switch {
	case errors.Is(err, coord.ErrUnknownTopic) && rt.Topic == nil:
		return t, errUnknownTopicID(rt.TopicID)
	case errors.Is(err, coord.ErrUnknownTopic):
		return t, errUnknownTopic(t.Name)
	case err != nil:
		return t, err
	}
	return t, nil
}

// awaitDeleted waits for the view to drop the deleted topics and answers REQUEST_TIMED_OUT for those it
// still shows in time.
func (ta *topicAdmin) awaitDeleted(ctx context.Context, d time.Duration, resp *kmsg.DeleteTopicsResponse, deleted map[int]coord.Topic) {
	gone := func(t coord.Topic) bool {
		if !t.ID.IsZero() {
			_, still := ta.view.TopicByID(t.ID) // a successor of the same name is another topic
			return !still
		}
		_, still := ta.view.Topic(t.Name)
		return !still
	}
	for _, i := range ta.awaitEach(ctx, d, deleted, gone) {
		st := &resp.Topics[i]
		st.ErrorCode, st.ErrorMessage = ta.answer(errNotVisible("topic " + quoteShort(deleted[i].Name) + " was deleted"))
	}
}
