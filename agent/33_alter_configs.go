package agent

import (
	"context"
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
	ta.alterResources(ctx, len(req.Resources), req.ValidateOnly,
		func(i int) resourceKey {
			return resourceKey{req.Resources[i].ResourceType, req.Resources[i].ResourceName}
		},
		func(i int) (coord.Topic, error) {
			rr := &req.Resources[i]
			return ta.updateTopicConfigs(ctx, rr.ResourceName, req.ValidateOnly, "replaced",
				func(cur map[string]string) (map[string]string, error) { return replacedConfigs(cur, rr.Configs) })
		},
		func(k resourceKey, err error) {
			st := kmsg.NewAlterConfigsResponseResource()
			st.ResourceType, st.ResourceName = k.typ, k.name
			st.ErrorCode, st.ErrorMessage = ta.answer(err)
			resp.Resources = append(resp.Resources, st)
		})
	return resp
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
