package agent

import (
	"errors"
	"maps"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

func legacyAlterReq(validateOnly bool, resources ...kmsg.AlterConfigsRequestResource) *kmsg.AlterConfigsRequest {
	req := kmsg.NewPtrAlterConfigsRequest()
	req.Version = 2
	req.ValidateOnly = validateOnly
	req.Resources = resources
	return req
}

// legacyTopic is a TOPIC resource; kv are name, value pairs, value "<nil>" for null.
func legacyTopic(name string, kv ...string) kmsg.AlterConfigsRequestResource {
	rr := kmsg.AlterConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: name}
	for i := 0; i+1 < len(kv); i += 2 {
		c := kmsg.AlterConfigsRequestResourceConfig{Name: kv[i]}
		if kv[i+1] != "<nil>" {
			c.Value = sp(kv[i+1])
		}
		rr.Configs = append(rr.Configs, c)
	}
	return rr
}

func TestLegacyAlterConfigs(t *testing.T) {
	t.Parallel()
	start := map[string]string{"max.message.bytes": "100", "retention.ms": "-1", "streamhouse.agent.group": "default"}
	for _, tc := range []struct {
		what string
		rr   kmsg.AlterConfigsRequestResource
		code *kerr.Error
		want map[string]string
	}{
		{"replaces, keeps the agent group", legacyTopic("t", "cleanup.policy", "compact", "delete.retention.ms", "1000"), nil,
			map[string]string{"cleanup.policy": "compact", "delete.retention.ms": "1000", "streamhouse.agent.group": "default"}},
		{"nothing resets all but the group", legacyTopic("t"), nil, map[string]string{"streamhouse.agent.group": "default"}},
		{"group named", legacyTopic("t", "streamhouse.agent.group", ""), nil, map[string]string{"streamhouse.agent.group": ""}},
		{"Kafka's moot config", legacyTopic("t", "min.insync.replicas", "2"), nil,
			map[string]string{"min.insync.replicas": "2", "streamhouse.agent.group": "default"}},
		{"unknown config", legacyTopic("t", "no.such.config", "1"), kerr.InvalidConfig, start},
		{"bad value", legacyTopic("t", "max.message.bytes", "lots"), kerr.InvalidConfig, start},
		{"null value", legacyTopic("t", "max.message.bytes", "<nil>"), kerr.InvalidRequest, start},
		{"twice", legacyTopic("t", "max.message.bytes", "1", "max.message.bytes", "2"), kerr.InvalidRequest, start},
		{"lags out of order", legacyTopic("t", "min.compaction.lag.ms", "9", "max.compaction.lag.ms", "8"), kerr.InvalidConfig, start},
		{"unknown topic", legacyTopic("nope", "max.message.bytes", "1"), kerr.UnknownTopicOrPartition, start},
		{"invalid topic name", legacyTopic("a b"), kerr.InvalidTopicException, start},
	} {
		f := newFakeTopics(coord.Topic{Name: "t", Partitions: 1, Configs: maps.Clone(start)})
		ta := newFakeAdmin(t, f)
		resp := ta.legacyAlterConfigs(testCtx(t), legacyAlterReq(false, tc.rr))
		if len(resp.Resources) != 1 {
			t.Fatalf("%s: %d answers", tc.what, len(resp.Resources))
		}
		r := resp.Resources[0]
		checkCode(t, tc.what, r.ErrorCode, tc.code)
		if r.ResourceName != tc.rr.ResourceName || r.ResourceType != kmsg.ConfigResourceTypeTopic {
			t.Errorf("%s: answered for %s %q", tc.what, r.ResourceType, r.ResourceName)
		}
		if got, _ := f.get("t"); !maps.Equal(got.Configs, tc.want) {
			t.Errorf("%s: stored %v, want %v", tc.what, got.Configs, tc.want)
		}
	}
}

func TestLegacyAlterConfigsResources(t *testing.T) {
	t.Parallel()
	f := newFakeTopics(coord.Topic{Name: "t", Partitions: 1}, coord.Topic{Name: "u", Partitions: 1})
	ta := newFakeAdmin(t, f)
	broker := kmsg.AlterConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "7"}
	resp := ta.legacyAlterConfigs(testCtx(t), legacyAlterReq(false,
		legacyTopic("t", "max.message.bytes", "1"), broker, legacyTopic("u", "max.message.bytes", "2"),
		legacyTopic("t", "max.message.bytes", "3")))
	want := []*kerr.Error{kerr.InvalidRequest, kerr.InvalidRequest, nil}
	if len(resp.Resources) != len(want) {
		t.Fatalf("%d answers, want one per resource", len(resp.Resources))
	}
	for i, w := range want {
		checkCode(t, resp.Resources[i].ResourceName, resp.Resources[i].ErrorCode, w)
	}
	if got, _ := f.get("u"); got.Configs["max.message.bytes"] != "2" {
		t.Errorf("u not altered: %v", got.Configs)
	}
	before := f.writeCount()
	resp = ta.legacyAlterConfigs(testCtx(t), legacyAlterReq(true, legacyTopic("u", "max.message.bytes", "9")))
	checkCode(t, "validate only", resp.Resources[0].ErrorCode, nil)
	if f.writeCount() != before {
		t.Error("validate-only request wrote")
	}
	if got, _ := f.get("u"); got.Configs["max.message.bytes"] != "2" {
		t.Errorf("validate only altered u: %v", got.Configs)
	}
}

// TestLegacyAlterConfigsEndToEnd sends the legacy AlterConfigs through kadm (AlterTopicConfigsState) to a
// real agent, as older tools do, and reads the result back with DescribeConfigs.
func TestLegacyAlterConfigsEndToEnd(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	createTopic(t, cl, "l", 1, map[string]*string{"max.message.bytes": sp("300")})

	resps, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{
		{Name: "cleanup.policy", Value: sp("compact")}, {Name: "segment.bytes", Value: sp("1048576")}}, "l")
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = resps.On("l", nil); err == nil {
			err = r.Err
		}
	}
	if err != nil {
		t.Fatalf("legacy alter: %v", err)
	}
	described, err := adm.DescribeTopicConfigs(ctx, "l")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := described.On("l", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*kadm.Config{}
	for i := range rc.Configs {
		got[rc.Configs[i].Key] = &rc.Configs[i]
	}
	if got["cleanup.policy"].MaybeValue() != "compact" || got["segment.bytes"].MaybeValue() != "1048576" {
		t.Errorf("described cleanup.policy %q, segment.bytes %q", got["cleanup.policy"].MaybeValue(), got["segment.bytes"].MaybeValue())
	}
	if c := got["max.message.bytes"]; c.Source != kmsg.ConfigSourceDefaultConfig {
		t.Errorf("max.message.bytes, not given, is %q from %s: the legacy API replaces all configs", c.MaybeValue(), c.Source)
	}
	resps, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: sp("shred")}}, "l")
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = resps.On("l", nil); err == nil {
			err = r.Err
		}
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("shred: %v, want INVALID_CONFIG", err)
	}
}
