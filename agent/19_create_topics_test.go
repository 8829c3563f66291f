package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

func createReq(version int16, topics ...kmsg.CreateTopicsRequestTopic) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version = version
	req.Topics = topics
	return req
}

func newTopic(name string, partitions int32, rf int16, configs ...string) kmsg.CreateTopicsRequestTopic {
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, rf
	for i := 0; i+1 < len(configs); i += 2 {
		rt.Configs = append(rt.Configs, kmsg.CreateTopicsRequestTopicConfig{Name: configs[i], Value: sp(configs[i+1])})
	}
	return rt
}

func TestCreateTopics(t *testing.T) {
	assigned := newTopic("assigned", -1, -1)
	assigned.ReplicaAssignment = []kmsg.CreateTopicsRequestTopicReplicaAssignment{{Partition: 0, Replicas: []int32{7}}}
	for _, tc := range []struct {
		what       string
		rt         kmsg.CreateTopicsRequestTopic
		code       *kerr.Error
		partitions int32
	}{
		{"plain", newTopic("t", 3, 1), nil, 3},
		{"default partitions and RF", newTopic("t", -1, -1), nil, 4},
		{"RF 3 accepted", newTopic("t", 1, 3), nil, 1},
		{"most partitions", newTopic("t", maxPartitionsPerTopic, 1), nil, maxPartitionsPerTopic},
		{"with configs", newTopic("t", 1, 1, "max.message.bytes", "100", "cleanup.policy", "delete"), nil, 1},
		{"exists", newTopic("old", 1, 1), kerr.TopicAlreadyExists, 0},
		{"bad name", newTopic("a/b", 1, 1), kerr.InvalidTopicException, 0},
		{"empty name", newTopic("", 1, 1), kerr.InvalidTopicException, 0},
		{"zero partitions", newTopic("t", 0, 1), kerr.InvalidPartitions, 0},
		{"negative partitions", newTopic("t", -2, 1), kerr.InvalidPartitions, 0},
		{"too many partitions", newTopic("t", maxPartitionsPerTopic+1, 1), kerr.InvalidPartitions, 0},
		{"RF 0", newTopic("t", 1, 0), kerr.InvalidReplicationFactor, 0},
		{"RF -2", newTopic("t", 1, -2), kerr.InvalidReplicationFactor, 0},
		{"replica assignment", assigned, kerr.InvalidRequest, 0},
		{"unknown config", newTopic("t", 1, 1, "segment.bytes", "1"), kerr.InvalidConfig, 0},
		{"compacted", newTopic("t", 1, 1, "cleanup.policy", "compact", "min.compaction.lag.ms", "5"), nil, 1},
		{"Kafka's moot configs", newTopic("t", 1, 1, "min.insync.replicas", "2", "segment.jitter.ms", "10"), nil, 1},
		{"bad config", newTopic("t", 1, 1, "cleanup.policy", "compact,shred"), kerr.InvalidConfig, 0},
		{"lags out of order", newTopic("t", 1, 1, "min.compaction.lag.ms", "10", "max.compaction.lag.ms", "5"), kerr.InvalidConfig, 0},
		{"tiered compacted", newTopic("t", 1, 1, "cleanup.policy", "compact", "remote.storage.enable", "true"), kerr.InvalidConfig, 0},
		{"duplicate config", newTopic("t", 1, 1, "max.message.bytes", "1", "max.message.bytes", "2"), kerr.InvalidRequest, 0},
	} {
		f := newFakeTopics(coord.Topic{Name: "old", Partitions: 1})
		ta := newFakeAdmin(t, f, func(c *Config) { c.DefaultPartitions = 4 })
		resp := ta.createTopics(testCtx(t), createReq(7, tc.rt))
		if len(resp.Topics) != 1 {
			t.Fatalf("%s: %d answers", tc.what, len(resp.Topics))
		}
		st := resp.Topics[0]
		checkCode(t, tc.what, st.ErrorCode, tc.code)
		if st.Topic != tc.rt.Topic {
			t.Errorf("%s: answered for %q", tc.what, st.Topic)
		}
		if tc.code != nil {
			if st.ErrorMessage == nil || *st.ErrorMessage == "" {
				t.Errorf("%s: no error message", tc.what)
			}
			if tc.code != kerr.TopicAlreadyExists && f.writeCount() != 0 {
				t.Errorf("%s: refused topic was written", tc.what)
			}
			continue
		}
		stored, ok := f.get(tc.rt.Topic)
		if !ok || stored.Partitions != tc.partitions || stored.ID != st.TopicID || st.TopicID == [16]byte{} {
			t.Errorf("%s: stored %+v (ok %v), answered id %x", tc.what, stored, ok, st.TopicID)
		}
		if st.NumPartitions != tc.partitions || st.ReplicationFactor != 1 {
			t.Errorf("%s: answered %d partitions RF %d", tc.what, st.NumPartitions, st.ReplicationFactor)
		}
		if len(st.Configs) != len(topicConfigDefs) {
			t.Errorf("%s: %d configs answered, want all %d", tc.what, len(st.Configs), len(topicConfigDefs))
		}
		for _, c := range tc.rt.Configs {
			if stored.Configs[c.Name] != *c.Value {
				t.Errorf("%s: stored %s=%q, want %q", tc.what, c.Name, stored.Configs[c.Name], *c.Value)
			}
			for _, rc := range st.Configs {
				if rc.Name == c.Name && (rc.Value == nil || *rc.Value != *c.Value || rc.Source != int8(kmsg.ConfigSourceDynamicTopicConfig)) {
					t.Errorf("%s: answered %s=%v source %d", tc.what, rc.Name, rc.Value, rc.Source)
				}
			}
		}
	}
}

func TestCreateTopicsDuplicates(t *testing.T) {
	f := newFakeTopics()
	ta := newFakeAdmin(t, f)
	resp := ta.createTopics(testCtx(t), createReq(5, newTopic("d", 1, 1), newTopic("ok", 1, 1), newTopic("d", 2, 1)))
	if len(resp.Topics) != 2 {
		t.Fatalf("%d answers, want one per name", len(resp.Topics))
	}
	checkCode(t, "duplicate", resp.Topics[0].ErrorCode, kerr.InvalidRequest)
	checkCode(t, "other", resp.Topics[1].ErrorCode, nil)
	if _, ok := f.get("d"); ok {
		t.Error("duplicated topic was created")
	}
}

func TestCreateTopicsValidateOnly(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "old", Partitions: 1})
	ta := newFakeAdmin(t, f)
	req := createReq(7, newTopic("new", 2, 1, "max.message.bytes", "10"), newTopic("old", 1, 1))
	req.ValidateOnly = true
	resp := ta.createTopics(testCtx(t), req)
	checkCode(t, "new", resp.Topics[0].ErrorCode, nil)
	checkCode(t, "old", resp.Topics[1].ErrorCode, kerr.TopicAlreadyExists)
	if f.writeCount() != 0 {
		t.Error("validate-only request wrote")
	}
	if st := resp.Topics[0]; st.NumPartitions != 2 || st.TopicID != [16]byte{} {
		t.Errorf("validate-only answer: %d partitions, id %x", st.NumPartitions, st.TopicID)
	}
}

func TestCreateTopicsWaitsForView(t *testing.T) {
	f := newFakeTopics()
	ta := newFakeAdmin(t, f)
	f.freeze(true)
	req := createReq(5, newTopic("t", 1, 1))
	req.TimeoutMillis = 60000
	st := ta.createTopics(testCtx(t), req).Topics[0]
	checkCode(t, "unseen topic", st.ErrorCode, kerr.RequestTimedOut)
	if st.ErrorMessage == nil || !strings.Contains(*st.ErrorMessage, "created") {
		t.Errorf("message %v", st.ErrorMessage)
	}

	// A zero timeout asks for no wait (as Kafka's); the creation is the answer.
	req = createReq(5, newTopic("t2", 1, 1))
	req.TimeoutMillis = 0
	checkCode(t, "no wait", ta.createTopics(testCtx(t), req).Topics[0].ErrorCode, nil)
}

// A topic the view shows without a leader for every partition is not answered as created: a client
// writes to it at once.
func TestCreateTopicsWaitsForLeaders(t *testing.T) {
	f := newFakeTopics()
	ta := newFakeAdmin(t, f)
	f.setLeaderless(true)
	req := createReq(5, newTopic("t", 2, 1))
	req.TimeoutMillis = 60000
	st := ta.createTopics(testCtx(t), req).Topics[0]
	checkCode(t, "unled topic", st.ErrorCode, kerr.RequestTimedOut)
	if st.ErrorMessage == nil || !strings.Contains(*st.ErrorMessage, "leader") {
		t.Errorf("message %v", st.ErrorMessage)
	}
	if _, ok := f.get("t"); !ok {
		t.Error("the topic was not created")
	}

	// Leaders arriving within the wait (the first look finds none, and they come): answered as created.
	ta.maxWait = time.Minute
	looked := false
	ta.led = func(tp coord.TP) bool {
		led := f.led(tp)
		if !looked {
			looked = true
			f.setLeaderless(false)
		}
		return led
	}
	req = createReq(5, newTopic("t2", 2, 1))
	req.TimeoutMillis = 60000
	checkCode(t, "led while waiting", ta.createTopics(testCtx(t), req).Topics[0].ErrorCode, nil)
}

// TestCreateTopicsUsableAtOnce checks, against a real agent, that a topic is in Metadata as soon as
// CreateTopics answers, with the id CreateTopics returned, and that RF 3 is accepted and reported as 1.
func TestCreateTopicsUsableAtOnce(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	ctx := testCtx(t)
	for i := range 5 {
		name := "t" + string(rune('a'+i))
		req := createReq(7, newTopic(name, 3, 3, "max.message.bytes", "5000"))
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		st := resp.Topics[0]
		checkCode(t, name, st.ErrorCode, nil)
		if st.ReplicationFactor != 1 || st.NumPartitions != 3 {
			t.Errorf("%s: answered RF %d, %d partitions", name, st.ReplicationFactor, st.NumPartitions)
		}
		mreq := kmsg.NewPtrMetadataRequest()
		mreq.Topics = []kmsg.MetadataRequestTopic{{Topic: sp(name)}}
		mresp, err := mreq.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		mt := mresp.Topics[0]
		if mt.ErrorCode == kerr.UnknownTopicOrPartition.Code || len(mt.Partitions) != 3 || mt.TopicID != st.TopicID {
			t.Errorf("%s: metadata right after creation: %s, %d partitions, id %x (created %x)",
				name, codeName(mt.ErrorCode), len(mt.Partitions), mt.TopicID, st.TopicID)
		}
	}
	resp, err := createReq(7, newTopic("ta", 1, 1)).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	checkCode(t, "again", resp.Topics[0].ErrorCode, kerr.TopicAlreadyExists)
}
