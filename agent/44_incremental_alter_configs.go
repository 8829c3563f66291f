package agent

import (
	"context"
	"errors"
	"maps"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// IncrementalAlterConfigs: v0-1
//
// TOPIC resources only, with the configs of topics.go. SET and DELETE work on every config; APPEND and
// SUBTRACT only on list configs (cleanup.policy), elsewhere INVALID_CONFIG. An unknown config name or a
// refused value is INVALID_CONFIG with a message naming the key; a key altered twice in one resource, a
// resource named twice, a null value for SET, or an unknown operation is INVALID_REQUEST. A resource's
// operations are checked and applied as one compare-and-swap on the topic's etcd key: all or nothing,
// never interleaved with another alteration. ValidateOnly runs the same checks against the stored topic
// and writes nothing.
//
// Binding a topic to another group (streamhouse.agent.group) hands it over: it then no longer exists
// for this group's clients.
//
// BROKER resources are INVALID_REQUEST: an agent's settings are its flags. Other resource types are
// INVALID_REQUEST too.
//
// Version notes:
// * v1: flexible

func (a *Agent) handleIncrementalAlterConfigs(ctx context.Context, c client, req *kmsg.IncrementalAlterConfigsRequest) kmsg.Response {
	return a.topicAdmin().alterConfigs(ctx, req)
}

type resourceKey struct {
	typ  kmsg.ConfigResourceType
	name string
}

func (ta *topicAdmin) alterConfigs(ctx context.Context, req *kmsg.IncrementalAlterConfigsRequest) *kmsg.IncrementalAlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	keyOf := func(i int) resourceKey {
		return resourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}
	}
	dups := duplicated(len(req.Resources), keyOf)
	answered := make(map[resourceKey]bool, len(req.Resources))
	var altered []coord.Topic
	for i := range req.Resources {
		rr := &req.Resources[i]
		k := keyOf(i)
		if answered[k] {
			continue
		}
		answered[k] = true
		st := kmsg.NewIncrementalAlterConfigsResponseResource()
		st.ResourceType, st.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		switch {
		case dups[k]:
			err = adminErrorf(kerr.InvalidRequest, "resource appears more than once in the request")
		case rr.ResourceType == kmsg.ConfigResourceTypeTopic:
			var t coord.Topic
			if t, err = ta.alterTopicConfigs(ctx, rr, req.ValidateOnly); err == nil && !req.ValidateOnly {
				altered = append(altered, t)
			}
		case rr.ResourceType == kmsg.ConfigResourceTypeBroker:
			err = adminErrorf(kerr.InvalidRequest, "broker configs cannot be altered: an agent's settings are its flags")
		default:
			err = adminErrorf(kerr.InvalidRequest, "config resource type %s is not supported", rr.ResourceType)
		}
		st.ErrorCode, st.ErrorMessage = ta.answer(err)
		resp.Resources = append(resp.Resources, st)
	}
	// The request has no timeout and the change is committed: wait a little for this agent's view
	// (produce reads max.message.bytes from it) but answer success regardless.
	ta.await(ctx, ta.maxWait, func() bool {
		for _, t := range altered {
			v, ok := ta.view.Topic(t.Name)
			if ok && v.ID == t.ID && !maps.Equal(v.Configs, t.Configs) {
				return false
			}
		}
		return true
	})
	return resp
}

// alterTopicConfigs applies one TOPIC resource's operations and returns the topic as updated.
func (ta *topicAdmin) alterTopicConfigs(ctx context.Context, rr *kmsg.IncrementalAlterConfigsRequestResource, validateOnly bool) (coord.Topic, error) {
	if err := validateTopicName(rr.ResourceName); err != nil {
		return coord.Topic{}, err
	}
	t, err := ta.store.UpdateTopic(ctx, rr.ResourceName, func(t *coord.Topic) error {
		if !ta.serves(*t) {
			return errUnknownTopic(rr.ResourceName)
		}
		next, err := alterConfigs(t.Configs, rr.Configs)
		if err != nil {
			return err
		}
		if validateOnly {
			return errDryRun
		}
		t.Configs = next
		return nil
	})
	switch {
	case errors.Is(err, errDryRun):
		return coord.Topic{}, nil
	case errors.Is(err, coord.ErrUnknownTopic):
		return coord.Topic{}, errUnknownTopic(rr.ResourceName)
	case err == nil:
		ta.log.Info("topic configs altered", "topic", t.Name, "configs", t.Configs)
	}
	return t, err
}
