package agent

import (
	"slices"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

func describeReq(version int16, resources ...kmsg.DescribeConfigsRequestResource) *kmsg.DescribeConfigsRequest {
	req := kmsg.NewPtrDescribeConfigsRequest()
	req.Version = version
	req.Resources = resources
	return req
}

func topicResource(name string, configs ...string) kmsg.DescribeConfigsRequestResource {
	return kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: name, ConfigNames: configs}
}

func configByName(cs []kmsg.DescribeConfigsResponseResourceConfig, name string) (kmsg.DescribeConfigsResponseResourceConfig, bool) {
	for _, c := range cs {
		if c.Name == name {
			return c, true
		}
	}
	return kmsg.DescribeConfigsResponseResourceConfig{}, false
}

func TestDescribeTopicConfigs(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "t", Partitions: 1, Configs: map[string]string{"max.message.bytes": "100"}})
	ta := newFakeAdmin(t, f)
	req := describeReq(4, topicResource("t"))
	req.IncludeSynonyms, req.IncludeDocumentation = true, true
	r := ta.describeConfigs(req).Resources[0]
	checkCode(t, "t", r.ErrorCode, nil)
	var names []string
	for _, c := range r.Configs {
		names = append(names, c.Name)
		if c.ReadOnly || c.IsSensitive || c.ConfigType == kmsg.ConfigTypeUnknown || c.Documentation == nil || c.Value == nil {
			t.Errorf("%s: %+v", c.Name, c)
		}
	}
	if !slices.Equal(names, topicConfigNames) || !slices.IsSorted(names) {
		t.Errorf("configs %v, want all supported, sorted", names)
	}

	set, _ := configByName(r.Configs, "max.message.bytes")
	if *set.Value != "100" || set.Source != kmsg.ConfigSourceDynamicTopicConfig || set.IsDefault {
		t.Errorf("set config: %+v", set)
	}
	if len(set.ConfigSynonyms) != 2 || set.ConfigSynonyms[0].Source != kmsg.ConfigSourceDynamicTopicConfig ||
		set.ConfigSynonyms[1].Source != kmsg.ConfigSourceDefaultConfig || *set.ConfigSynonyms[1].Value != strconv.Itoa(DefaultMaxMessageBytes) {
		t.Errorf("set config synonyms: %+v", set.ConfigSynonyms)
	}
	def, _ := configByName(r.Configs, "cleanup.policy")
	if *def.Value != "delete" || def.Source != kmsg.ConfigSourceDefaultConfig || !def.IsDefault || def.ConfigType != kmsg.ConfigTypeList {
		t.Errorf("default config: %+v", def)
	}

	// Without synonyms or documentation asked for, none are sent.
	r = ta.describeConfigs(describeReq(4, topicResource("t"))).Resources[0]
	for _, c := range r.Configs {
		if len(c.ConfigSynonyms) != 0 || c.Documentation != nil {
			t.Errorf("%s: synonyms or documentation not asked for: %+v", c.Name, c)
		}
	}
}

func TestDescribeTopicConfigsByName(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "t", Partitions: 1})
	ta := newFakeAdmin(t, f)
	for _, tc := range []struct {
		names []string
		want  []string
	}{
		{nil, topicConfigNames},
		{[]string{}, topicConfigNames},
		{[]string{"retention.ms", "segment.bytes", "max.message.bytes", "retention.ms"}, []string{"max.message.bytes", "retention.ms", "segment.bytes"}},
		{[]string{"segment.jitterz.ms"}, nil},
	} {
		r := ta.describeConfigs(describeReq(0, topicResource("t", tc.names...))).Resources[0] // names... keeps nil and empty apart
		var got []string
		for _, c := range r.Configs {
			got = append(got, c.Name)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("names %q: got %v, want %v", tc.names, got, tc.want)
		}
	}
}

func TestDescribeConfigsErrors(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "t", Partitions: 1})
	ta := newFakeAdmin(t, f) // node 7
	resp := ta.describeConfigs(describeReq(4,
		topicResource("nope"),
		topicResource("bad name"),
		kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "8"},
		kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "x"},
		kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBrokerLogger, ResourceName: "7"},
		kmsg.DescribeConfigsRequestResource{ResourceType: 99, ResourceName: "t"},
		topicResource("t"),
	))
	want := []*kerr.Error{kerr.UnknownTopicOrPartition, kerr.InvalidTopicException, kerr.InvalidRequest, kerr.InvalidRequest,
		kerr.InvalidRequest, kerr.InvalidRequest, nil}
	if len(resp.Resources) != len(want) {
		t.Fatalf("%d answers", len(resp.Resources))
	}
	for i, w := range want {
		r := resp.Resources[i]
		checkCode(t, r.ResourceType.String()+" "+r.ResourceName, r.ErrorCode, w)
		if w != nil && (len(r.Configs) != 0 || r.ErrorMessage == nil) {
			t.Errorf("%s: configs %v, message %v", r.ResourceName, r.Configs, r.ErrorMessage)
		}
	}
}

func TestDescribeBrokerConfigs(t *testing.T) {
	f := newFakeTopics()
	ta := newFakeAdmin(t, f, func(c *Config) { c.AZ = "eu-1a"; c.AutoCreateTopics = true; c.DefaultPartitions = 6 })
	resp := ta.describeConfigs(describeReq(4,
		kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "7"},
		kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: ""},
		kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "7", ConfigNames: []string{"broker.rack"}},
	))
	mine := resp.Resources[0]
	checkCode(t, "broker 7", mine.ErrorCode, nil)
	for name, want := range map[string]string{
		"auto.create.topics.enable": "true", "broker.id": "7", "broker.rack": "eu-1a", "num.partitions": "6",
		"message.max.bytes": strconv.Itoa(DefaultMaxMessageBytes), "streamhouse.agent.id": "a1", "streamhouse.agent.group": "default",
	} {
		c, ok := configByName(mine.Configs, name)
		if !ok || c.Value == nil || *c.Value != want || !c.ReadOnly {
			t.Errorf("broker config %s: %+v, want %q read-only", name, c, want)
		}
	}
	if cluster := resp.Resources[1]; cluster.ErrorCode != 0 || len(cluster.Configs) != 0 {
		t.Errorf("cluster-wide dynamic broker configs: %+v, want none", cluster)
	}
	if one := resp.Resources[2]; len(one.Configs) != 1 || one.Configs[0].Name != "broker.rack" {
		t.Errorf("broker.rack only: %+v", one.Configs)
	}

	// Without a zone the rack is null and a default.
	ta = newFakeAdmin(t, f)
	r := ta.describeConfigs(describeReq(4, kmsg.DescribeConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "7"})).Resources[0]
	if c, _ := configByName(r.Configs, "broker.rack"); c.Value != nil || c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("rack without zone: %+v", c)
	}
}
