package agent

import (
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

func alterReq(resources ...kmsg.IncrementalAlterConfigsRequestResource) *kmsg.IncrementalAlterConfigsRequest {
	req := kmsg.NewPtrIncrementalAlterConfigsRequest()
	req.Version = 1
	req.Resources = resources
	return req
}

// alterTopic is a TOPIC resource; ops are (name, op, value) triples, value "<nil>" for null.
func alterTopic(name string, ops ...string) kmsg.IncrementalAlterConfigsRequestResource {
	rr := kmsg.IncrementalAlterConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeTopic, ResourceName: name}
	for i := 0; i+2 < len(ops); i += 3 {
		op, err := kmsg.ParseIncrementalAlterConfigOp(ops[i+1])
		if err != nil {
			panic(err)
		}
		c := kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: ops[i], Op: op}
		if ops[i+2] != "<nil>" {
			c.Value = sp(ops[i+2])
		}
		rr.Configs = append(rr.Configs, c)
	}
	return rr
}

func TestIncrementalAlterConfigs(t *testing.T) {
	start := map[string]string{"max.message.bytes": "100", "retention.ms": "-1"}
	for _, tc := range []struct {
		what string
		rr   kmsg.IncrementalAlterConfigsRequestResource
		code *kerr.Error
		want map[string]string // stored after
	}{
		{"set and delete", alterTopic("t", "max.message.bytes", "set", "200", "retention.ms", "delete", "<nil>"), nil,
			map[string]string{"max.message.bytes": "200"}},
		{"set group", alterTopic("t", "streamhouse.agent.group", "set", "g1"), nil,
			map[string]string{"max.message.bytes": "100", "retention.ms": "-1", "streamhouse.agent.group": "g1"}},
		{"append list", alterTopic("t", "cleanup.policy", "append", "delete"), nil,
			map[string]string{"max.message.bytes": "100", "retention.ms": "-1", "cleanup.policy": "delete"}},
		{"nothing", alterTopic("t"), nil, start},
		{"unknown topic", alterTopic("nope", "max.message.bytes", "set", "1"), kerr.UnknownTopicOrPartition, start},
		{"invalid topic name", alterTopic("a b", "max.message.bytes", "set", "1"), kerr.InvalidTopicException, start},
		{"unknown config", alterTopic("t", "segment.jitterz.ms", "set", "1"), kerr.InvalidConfig, start},
		{"segment.bytes below its minimum", alterTopic("t", "segment.bytes", "set", "1"), kerr.InvalidConfig, start},
		{"bad value", alterTopic("t", "max.message.bytes", "set", "lots"), kerr.InvalidConfig, start},
		{"append to int", alterTopic("t", "max.message.bytes", "append", "1"), kerr.InvalidConfig, start},
		{"subtract from string", alterTopic("t", "message.timestamp.type", "subtract", "CreateTime"), kerr.InvalidConfig, start},
		{"compact", alterTopic("t", "cleanup.policy", "append", "compact"), nil,
			map[string]string{"max.message.bytes": "100", "retention.ms": "-1", "cleanup.policy": "compact,delete"}},
		{"shred", alterTopic("t", "cleanup.policy", "append", "shred"), kerr.InvalidConfig, start},
		{"lags out of order", alterTopic("t", "max.compaction.lag.ms", "set", "5", "min.compaction.lag.ms", "set", "6"), kerr.InvalidConfig, start},
		{"null set", alterTopic("t", "max.message.bytes", "set", "<nil>"), kerr.InvalidRequest, start},
		{"key twice", alterTopic("t", "max.message.bytes", "set", "1", "max.message.bytes", "set", "2"), kerr.InvalidRequest, start},
		{"all or nothing", alterTopic("t", "max.message.bytes", "set", "1", "retention.ms", "set", "-2"), kerr.InvalidConfig, start},
	} {
		f := newFakeTopics(coord.Topic{Name: "t", Partitions: 1, Configs: maps.Clone(start)})
		ta := newFakeAdmin(t, f)
		resp := ta.alterConfigs(testCtx(t), alterReq(tc.rr))
		if len(resp.Resources) != 1 {
			t.Fatalf("%s: %d answers", tc.what, len(resp.Resources))
		}
		r := resp.Resources[0]
		checkCode(t, tc.what, r.ErrorCode, tc.code)
		if r.ResourceName != tc.rr.ResourceName || r.ResourceType != kmsg.ConfigResourceTypeTopic {
			t.Errorf("%s: answered for %s %q", tc.what, r.ResourceType, r.ResourceName)
		}
		if tc.code == kerr.InvalidConfig && (r.ErrorMessage == nil || !strings.Contains(*r.ErrorMessage, tc.rr.Configs[len(tc.rr.Configs)-1].Name)) {
			t.Errorf("%s: message %v does not name the key", tc.what, r.ErrorMessage)
		}
		if got, _ := f.get("t"); !maps.Equal(got.Configs, tc.want) || got.Partitions != 1 {
			t.Errorf("%s: stored %+v, want configs %v", tc.what, got, tc.want)
		}
	}
}

func TestIncrementalAlterConfigsResources(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "t", Partitions: 1}, coord.Topic{Name: "u", Partitions: 1})
	ta := newFakeAdmin(t, f)
	broker := kmsg.IncrementalAlterConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeBroker, ResourceName: "7",
		Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "auto.create.topics.enable", Value: sp("true")}}}
	other := kmsg.IncrementalAlterConfigsRequestResource{ResourceType: kmsg.ConfigResourceTypeGroupConfig, ResourceName: "g"}
	resp := ta.alterConfigs(testCtx(t), alterReq(
		alterTopic("t", "max.message.bytes", "set", "1"),
		broker,
		alterTopic("u", "max.message.bytes", "set", "2"),
		other,
		alterTopic("t", "max.message.bytes", "set", "3"),
	))
	want := []*kerr.Error{kerr.InvalidRequest, kerr.InvalidRequest, nil, kerr.InvalidRequest}
	if len(resp.Resources) != len(want) {
		t.Fatalf("%d answers, want one per resource", len(resp.Resources))
	}
	for i, w := range want {
		r := resp.Resources[i]
		checkCode(t, fmt.Sprintf("%s %s", r.ResourceType, r.ResourceName), r.ErrorCode, w)
	}
	if got, _ := f.get("t"); len(got.Configs) != 0 {
		t.Errorf("t, named twice, was altered: %v", got.Configs)
	}
	if got, _ := f.get("u"); got.Configs["max.message.bytes"] != "2" {
		t.Errorf("u not altered: %v", got.Configs)
	}

	before := f.writeCount()
	req := alterReq(alterTopic("t", "max.message.bytes", "set", "9"), alterTopic("u", "retention.ms", "set", "-5"))
	req.ValidateOnly = true
	resp = ta.alterConfigs(testCtx(t), req)
	checkCode(t, "valid", resp.Resources[0].ErrorCode, nil)
	checkCode(t, "invalid", resp.Resources[1].ErrorCode, kerr.InvalidConfig)
	if f.writeCount() != before {
		t.Error("validate-only request wrote")
	}
}

// TestTopicConfigsEndToEnd alters max.message.bytes through the Kafka protocol on a real agent, reads it
// back with DescribeConfigs, and checks that produce enforces it at once.
func TestTopicConfigsEndToEnd(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, []kgo.Opt{kgo.RecordRetries(2)}, a)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	createTopic(t, cl, "c", 1, map[string]*string{"cleanup.policy": sp("delete")})

	alter, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "max.message.bytes", Value: sp("300")}}, "c")
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = alter.On("c", nil); err == nil {
			err = r.Err
		}
	}
	if err != nil {
		t.Fatalf("alter: %v", err)
	}
	described, err := adm.DescribeTopicConfigs(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	rc, err := described.On("c", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range rc.Configs {
		got[c.Key] = c.MaybeValue()
		if c.Key == "max.message.bytes" && c.Source != kmsg.ConfigSourceDynamicTopicConfig {
			t.Errorf("max.message.bytes source %s", c.Source)
		}
	}
	if got["max.message.bytes"] != "300" || got["cleanup.policy"] != "delete" || got["message.timestamp.type"] != "CreateTime" {
		t.Errorf("described %v", got)
	}

	big := make([]byte, 1000) // random: kgo compresses batches
	rand.Read(big)
	err = cl.ProduceSync(ctx, &kgo.Record{Topic: "c", Value: big}).FirstErr()
	if !errors.Is(err, kerr.MessageTooLarge) {
		t.Errorf("produce over max.message.bytes: %v, want MESSAGE_TOO_LARGE", err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "c", Value: []byte("small")}).FirstErr(); err != nil {
		t.Errorf("small produce: %v", err)
	}

	// A refused value leaves the topic as it was.
	alter, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: sp("shred")}}, "c")
	if err == nil {
		var r kadm.AlterConfigsResponse
		if r, err = alter.On("c", nil); err == nil {
			err = r.Err
		}
	}
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Errorf("shred: %v, want INVALID_CONFIG", err)
	}
}
