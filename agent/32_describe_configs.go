package agent

import (
	"context"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeConfigs: v0-4
//
// TOPIC resources list the supported topic configs of topics.go: a value the topic sets is
// DYNAMIC_TOPIC_CONFIG, any other is DEFAULT_CONFIG; none is read-only (those that accept a single
// value may still be set to it). An invalid topic name is INVALID_TOPIC_EXCEPTION, an unknown topic
// UNKNOWN_TOPIC_OR_PARTITION. Requested names StreamHouse does not support are left out, as Kafka does;
// no names (null or empty) means all.
//
// BROKER resources, named by this agent's node id, list the few agent settings a Kafka client may care
// about, all read-only (an agent's settings are its flags). The empty name asks, as in Kafka, for the
// dynamic cluster-wide broker configs, of which there are none; another node id is INVALID_REQUEST, as
// in Kafka: ask that broker. Other resource types are INVALID_REQUEST.
//
// Version notes:
// * v1: IncludeSynonyms; Source and ConfigSynonyms in response (IsDefault superseded by Source)
// * v2: no change (throttling applied after the response)
// * v3: IncludeDocumentation; ConfigType and Documentation in response
// * v4: flexible

func (a *Agent) handleDescribeConfigs(ctx context.Context, c client, req *kmsg.DescribeConfigsRequest) kmsg.Response {
	return a.topicAdmin().describeConfigs(req)
}

func (ta *topicAdmin) describeConfigs(req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for i := range req.Resources {
		rr := &req.Resources[i]
		st := kmsg.NewDescribeConfigsResponseResource()
		st.ResourceType, st.ResourceName = rr.ResourceType, rr.ResourceName
		entries, err := ta.configEntries(rr)
		if err != nil {
			st.ErrorCode, st.ErrorMessage = ta.answer(err)
			resp.Resources = append(resp.Resources, st)
			continue
		}
		want := map[string]bool{}
		for _, n := range rr.ConfigNames {
			want[n] = true
		}
		for _, e := range entries {
			if len(want) == 0 || want[e.name] {
				st.Configs = append(st.Configs, e.describe(req.IncludeSynonyms, req.IncludeDocumentation))
			}
		}
		resp.Resources = append(resp.Resources, st)
	}
	return resp
}

func (ta *topicAdmin) configEntries(rr *kmsg.DescribeConfigsRequestResource) ([]configEntry, error) {
	switch rr.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
		if err := validateTopicName(rr.ResourceName); err != nil {
			return nil, err
		}
		t, ok := ta.servedTopic(rr.ResourceName)
		if !ok {
			return nil, errUnknownTopic(rr.ResourceName)
		}
		return topicConfigEntries(t, clusterTopicDefaults(ta.cfg)), nil
	case kmsg.ConfigResourceTypeBroker:
		node := strconv.Itoa(int(ta.node))
		switch rr.ResourceName {
		case "":
			return nil, nil
		case node:
			return brokerConfigEntries(ta.cfg, ta.node), nil
		}
		return nil, adminErrorf(kerr.InvalidRequest, "broker %s: this agent is node %s; ask that broker",
			quoteShort(rr.ResourceName), node)
	}
	return nil, adminErrorf(kerr.InvalidRequest, "config resource type %s is not supported", rr.ResourceType)
}

// brokerConfigEntries are an agent's settings under the names Kafka clients know, plus the agent's own.
// Each says what the agent really does; none can be altered.
func brokerConfigEntries(cfg *Config, node int32) []configEntry {
	static := func(name string, value *string, typ kmsg.ConfigType, doc string) configEntry {
		src := kmsg.ConfigSourceStaticBrokerConfig
		if value == nil {
			src = kmsg.ConfigSourceDefaultConfig
		}
		return configEntry{name: name, value: value, source: src, typ: typ, readOnly: true, doc: doc,
			synonyms: []configSynonym{{name: name, value: value, source: src}}}
	}
	str := func(s string) *string { return &s }
	var rack *string
	if cfg.AZ != "" {
		rack = str(cfg.AZ)
	}
	maxMsg := static("message.max.bytes", str(strconv.Itoa(DefaultMaxMessageBytes)), kmsg.ConfigTypeInt,
		"The default of the topic config max.message.bytes.")
	maxMsg.source, maxMsg.synonyms[0].source = kmsg.ConfigSourceDefaultConfig, kmsg.ConfigSourceDefaultConfig
	return []configEntry{
		static("auto.create.topics.enable", str(strconv.FormatBool(cfg.AutoCreateTopics)), kmsg.ConfigTypeBoolean,
			"Whether Metadata and Produce create unknown topics (flag of the agent)."),
		static("broker.id", str(strconv.Itoa(int(node))), kmsg.ConfigTypeInt,
			"This agent's Kafka node id, derived from its agent id."),
		static("broker.rack", rack, kmsg.ConfigTypeString, "This agent's availability zone."),
		maxMsg,
		static("num.partitions", str(strconv.Itoa(int(cfg.DefaultPartitions))), kmsg.ConfigTypeInt,
			"Partitions of auto-created topics and of CreateTopics asking for -1."),
		static("streamhouse.agent.group", str(cfg.Group), kmsg.ConfigTypeString,
			"This agent's group: it serves topics of this group and topics bound to none."),
		static("streamhouse.agent.id", str(cfg.ID), kmsg.ConfigTypeString, "This agent's id."),
	}
}
