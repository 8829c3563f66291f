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
	ta.alterResources(ctx, len(req.Resources), req.ValidateOnly,
		func(i int) resourceKey {
			return resourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}
		},
		func(i int) (coord.Topic, error) {
			rr := &req.Resources[i]
			return ta.updateTopicConfigs(ctx, rr.ResourceName, req.ValidateOnly, "altered",
				func(cur map[string]string) (map[string]string, error) { return alterConfigs(cur, rr.Configs) })
		},
		func(k resourceKey, err error) {
			st := kmsg.NewIncrementalAlterConfigsResponseResource()
			st.ResourceType, st.ResourceName = k.typ, k.name
			st.ErrorCode, st.ErrorMessage = ta.answer(err)
			resp.Resources = append(resp.Resources, st)
		})
	return resp
}

// alterResources answers once each of the n config resources of an IncrementalAlterConfigs or a
// legacy AlterConfigs request (key names them): a resource named twice is refused, a topic is altered
// by alterTopic, a broker or another type refused; answer takes each outcome. The request has no
// timeout and the changes are committed: it then waits a little for this agent's view of the topics
// altered (produce reads max.message.bytes from it) but answers success regardless.
func (ta *topicAdmin) alterResources(ctx context.Context, n int, validateOnly bool, key func(int) resourceKey,
	alterTopic func(int) (coord.Topic, error), answer func(resourceKey, error)) {
	dups := duplicated(n, key)
	answered := make(map[resourceKey]bool, n)
	var altered []coord.Topic
	for i := range n {
		k := key(i)
		if answered[k] {
			continue
		}
		answered[k] = true
		var err error
		switch {
		case dups[k]:
			err = adminErrorf(kerr.InvalidRequest, "resource appears more than once in the request")
		case k.typ == kmsg.ConfigResourceTypeTopic:
			var t coord.Topic
			if t, err = alterTopic(i); err == nil && !validateOnly {
				altered = append(altered, t)
			}
		case k.typ == kmsg.ConfigResourceTypeBroker:
			err = adminErrorf(kerr.InvalidRequest, "broker configs cannot be altered: an agent's settings are its flags")
		default:
			err = adminErrorf(kerr.InvalidRequest, "config resource type %s is not supported", k.typ)
		}
		answer(k, err)
	}
	ta.await(ctx, ta.maxWait, func() bool {
		for _, t := range altered {
			v, ok := ta.view.Topic(t.Name)
			if ok && v.ID == t.ID && !maps.Equal(v.Configs, t.Configs) {
				return false
			}
		}
		return true
	})
}

// updateTopicConfigs sets topic name's configs to what next makes of them, as one compare-and-swap
// (with validateOnly: checked, nothing written), logs the change as verb, and returns the topic as
// updated.
func (ta *topicAdmin) updateTopicConfigs(ctx context.Context, name string, validateOnly bool, verb string,
	next func(map[string]string) (map[string]string, error)) (coord.Topic, error) {
	if err := validateTopicName(name); err != nil {
		return coord.Topic{}, err
	}
	t, err := ta.store.UpdateTopic(ctx, name, func(t *coord.Topic) error {
		if !ta.serves(*t) {
			return errUnknownTopic(name)
		}
		cfgs, err := next(t.Configs)
		if err != nil {
			return err
		}
		if validateOnly {
			return errDryRun
		}
		t.Configs = cfgs
		return nil
	})
	switch {
	case errors.Is(err, errDryRun):
		return coord.Topic{}, nil
	case errors.Is(err, coord.ErrUnknownTopic):
		return coord.Topic{}, errUnknownTopic(name)
	case err == nil:
		ta.log.Info("topic configs "+verb, "topic", t.Name, "configs", t.Configs)
	}
	return t, err
}
