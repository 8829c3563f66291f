package agent

import (
	"context"
	"errors"
	"maps"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// AlterConfigs (legacy): v0-2
//
// The non-incremental predecessor of IncrementalAlterConfigs, which older tools still send
// (librdkafka's rd_kafka_AlterConfigs, kafka-python, sarama's AlterConfigs). As in Kafka, a TOPIC
// resource's configs are *replaced* by those given: a config not named returns to its default. The
// exception is StreamHouse's own streamhouse.* configs (the topic's agent group), which a Kafka tool does
// not know it would drop: they stay unless named. Each config is validated as for CreateTopics; an
// unknown name or a refused value is INVALID_CONFIG, a null value or a name given twice INVALID_REQUEST.
// A resource is one compare-and-swap on the topic's key; ValidateOnly checks and writes nothing.
// BROKER and other resource types are INVALID_REQUEST, as for IncrementalAlterConfigs.
//
// Version notes:
// * v1: no change (throttling applied after the response)
// * v2: flexible

func (a *Agent) handleAlterConfigs(ctx context.Context, c client, req *kmsg.AlterConfigsRequest) kmsg.Response {
	return a.topicAdmin().legacyAlterConfigs(ctx, req)
}

func (ta *topicAdmin) legacyAlterConfigs(ctx context.Context, req *kmsg.AlterConfigsRequest) *kmsg.AlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
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
		st := kmsg.NewAlterConfigsResponseResource()
		st.ResourceType, st.ResourceName = rr.ResourceType, rr.ResourceName
		var err error
		switch {
		case dups[k]:
			err = adminErrorf(kerr.InvalidRequest, "resource appears more than once in the request")
		case rr.ResourceType == kmsg.ConfigResourceTypeTopic:
			var t coord.Topic
			if t, err = ta.replaceTopicConfigs(ctx, rr, req.ValidateOnly); err == nil && !req.ValidateOnly {
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

// replaceTopicConfigs replaces one TOPIC resource's configs and returns the topic as updated.
func (ta *topicAdmin) replaceTopicConfigs(ctx context.Context, rr *kmsg.AlterConfigsRequestResource, validateOnly bool) (coord.Topic, error) {
	if err := validateTopicName(rr.ResourceName); err != nil {
		return coord.Topic{}, err
	}
	t, err := ta.store.UpdateTopic(ctx, rr.ResourceName, func(t *coord.Topic) error {
		if !ta.serves(*t) {
			return errUnknownTopic(rr.ResourceName)
		}
		next, err := replacedConfigs(t.Configs, rr.Configs)
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
		ta.log.Info("topic configs replaced", "topic", t.Name, "configs", t.Configs)
	}
	return t, err
}

// replacedConfigs is the configs a legacy AlterConfigs leaves: those given, validated, and the current
// streamhouse.* configs not given.
func replacedConfigs(cur map[string]string, cfgs []kmsg.AlterConfigsRequestResourceConfig) (map[string]string, error) {
	next := map[string]string{}
	for _, c := range cfgs {
		if _, dup := next[c.Name]; dup {
			return nil, adminErrorf(kerr.InvalidRequest, "topic config %s given more than once", quoteShort(c.Name))
		}
		if c.Value == nil {
			if _, known := topicConfigDefs[c.Name]; known {
				return nil, adminErrorf(kerr.InvalidRequest, "topic config %s: null value", c.Name)
			}
		}
		v, err := validateTopicConfig(c.Name, c.Value)
		if err != nil {
			return nil, err
		}
		next[c.Name] = v
	}
	for name, v := range cur {
		if _, given := next[name]; !given && strings.HasPrefix(name, "streamhouse.") {
			next[name] = v
		}
	}
	if err := validateTopicConfigSet(next); err != nil {
		return nil, err
	}
	if len(next) == 0 {
		return nil, nil
	}
	return next, nil
}
