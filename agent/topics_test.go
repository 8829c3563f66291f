package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// fakeTopics is an in-memory topicStore and topicView. The view follows the store at once unless it is
// frozen, which is how a test shows a view lagging etcd. Every partition has a leader unless the view
// is leaderless.
type fakeTopics struct {
	mu         sync.Mutex
	stored     map[string]coord.Topic
	shown      map[string]coord.Topic
	frozen     bool
	leaderless bool
	changed    chan struct{}
	writes     int
}

func newFakeTopics(topics ...coord.Topic) *fakeTopics {
	f := &fakeTopics{stored: map[string]coord.Topic{}, shown: map[string]coord.Topic{}, changed: make(chan struct{})}
	for _, t := range topics {
		if t.ID.IsZero() {
			t.ID = coord.NewTopicID()
		}
		f.stored[t.Name] = t
	}
	f.publishLocked()
	return f
}

func cloneTopic(t coord.Topic) coord.Topic {
	t.Configs = maps.Clone(t.Configs)
	return t
}

// publishLocked copies the store into the view, unless frozen, and signals the change.
func (f *fakeTopics) publishLocked() {
	if f.frozen {
		return
	}
	f.shown = map[string]coord.Topic{}
	for n, t := range f.stored {
		f.shown[n] = cloneTopic(t)
	}
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeTopics) freeze(frozen bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = frozen
	f.publishLocked()
}

// setLeaderless takes every partition's leader away, or gives them back.
func (f *fakeTopics) setLeaderless(leaderless bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.leaderless = leaderless
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeTopics) led(coord.TP) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.leaderless
}

func (f *fakeTopics) get(name string) (coord.Topic, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.stored[name]
	return cloneTopic(t), ok
}

func (f *fakeTopics) writeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.writes
}

func (f *fakeTopics) CreateTopic(ctx context.Context, t coord.Topic) (coord.Topic, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.stored[t.Name]; ok {
		return coord.Topic{}, fmt.Errorf("%w: %q", coord.ErrTopicExists, t.Name)
	}
	if t.ID.IsZero() {
		t.ID = coord.NewTopicID()
	}
	f.stored[t.Name] = cloneTopic(t)
	f.writes++
	f.publishLocked()
	return t, nil
}

func (f *fakeTopics) DeleteTopic(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.stored[name]; !ok {
		return fmt.Errorf("%w: %q", coord.ErrUnknownTopic, name)
	}
	delete(f.stored, name)
	f.writes++
	f.publishLocked()
	return nil
}

func (f *fakeTopics) UpdateTopic(ctx context.Context, name string, fn func(*coord.Topic) error) (coord.Topic, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.stored[name]
	if !ok {
		return coord.Topic{}, fmt.Errorf("%w: %q", coord.ErrUnknownTopic, name)
	}
	t = cloneTopic(t)
	if err := fn(&t); err != nil {
		return coord.Topic{}, err
	}
	f.stored[name] = cloneTopic(t)
	f.writes++
	f.publishLocked()
	return t, nil
}

func (f *fakeTopics) Topic(name string) (coord.Topic, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.shown[name]
	return cloneTopic(t), ok
}

func (f *fakeTopics) TopicByID(id coord.TopicID) (coord.Topic, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.shown {
		if t.ID == id {
			return cloneTopic(t), true
		}
	}
	return coord.Topic{}, false
}

func (f *fakeTopics) Changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// newFakeAdmin is a topicAdmin over f, as agent "a1" (node 7) of group "default".
func newFakeAdmin(t *testing.T, f *fakeTopics, opts ...func(*Config)) *topicAdmin {
	t.Helper()
	cfg := NewConfig()
	cfg.ID = "a1"
	for _, o := range opts {
		o(&cfg)
	}
	serves := func(t coord.Topic) bool { g := t.Configs[configAgentGroup]; return g == "" || g == cfg.Group }
	return &topicAdmin{store: f, view: f, serves: serves, led: f.led, cfg: &cfg, node: 7, maxWait: 100 * time.Millisecond, log: testLogger(t)}
}

func sp(s string) *string { return &s }

// codeName prints an error code for test failures.
func codeName(code int16) string {
	if code == 0 {
		return "NONE"
	}
	return kerr.ErrorForCode(code).Error()
}

func checkCode(t *testing.T, what string, got int16, want *kerr.Error) {
	t.Helper()
	var w int16
	if want != nil {
		w = want.Code
	}
	if got != w {
		t.Errorf("%s: error %s, want %s", what, codeName(got), codeName(w))
	}
}

func TestValidateTopicName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"t", true},
		{"orders.v1_eu-west", true},
		{"__consumer_offsets", true},
		{"...", true},
		{strings.Repeat("a", 249), true},
		{"", false},
		{".", false},
		{"..", false},
		{strings.Repeat("a", 250), false},
		{strings.Repeat("a", 1<<20), false},
		{"a b", false},
		{"a/b", false},
		{"a\x00", false},
		{"é", false},
		{"a:b", false},
		{"a*", false},
	} {
		err := validateTopicName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("validateTopicName(%.20q): %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, kerr.InvalidTopicException) || kafkaCode(err) != kerr.InvalidTopicException.Code {
				t.Errorf("validateTopicName(%.20q): %v does not carry INVALID_TOPIC_EXCEPTION", tc.name, err)
			}
			if len(err.Error()) > 300 {
				t.Errorf("validateTopicName: message of %d bytes echoes the name whole", len(err.Error()))
			}
		}
	}
}

func TestValidateTopicConfig(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value *string
		want  string      // canonical value stored
		code  *kerr.Error // nil: accepted
	}{
		{"max.message.bytes", sp("1000"), "1000", nil},
		{"max.message.bytes", sp(" 1000 "), "1000", nil},
		{"max.message.bytes", sp("+7"), "7", nil},
		{"max.message.bytes", sp("0"), "0", nil},
		{"max.message.bytes", sp("2147483647"), "2147483647", nil},
		{"max.message.bytes", sp("2147483648"), "", kerr.InvalidConfig},
		{"max.message.bytes", sp("-1"), "", kerr.InvalidConfig},
		{"max.message.bytes", sp("1k"), "", kerr.InvalidConfig},
		{"max.message.bytes", sp(""), "", kerr.InvalidConfig},
		{"max.message.bytes", nil, "", kerr.InvalidConfig},
		{"message.timestamp.type", sp("CreateTime"), "CreateTime", nil},
		{"message.timestamp.type", sp("LogAppendTime"), "LogAppendTime", nil},
		{"message.timestamp.type", sp("createtime"), "", kerr.InvalidConfig},
		{"cleanup.policy", sp("delete"), "delete", nil},
		{"cleanup.policy", sp("delete, delete"), "delete", nil},
		{"cleanup.policy", sp("compact"), "compact", nil},
		{"cleanup.policy", sp("delete, compact"), "compact,delete", nil},
		{"cleanup.policy", sp("compact,delete,compact"), "compact,delete", nil},
		{"cleanup.policy", sp("compact,shred"), "", kerr.InvalidConfig},
		{"cleanup.policy", sp(""), "", kerr.InvalidConfig},
		{"delete.retention.ms", sp("0"), "0", nil},
		{"delete.retention.ms", sp("-1"), "", kerr.InvalidConfig},
		{"min.compaction.lag.ms", sp("1000"), "1000", nil},
		{"min.compaction.lag.ms", sp("-1"), "", kerr.InvalidConfig},
		{"max.compaction.lag.ms", sp("1"), "1", nil},
		{"max.compaction.lag.ms", sp("0"), "", kerr.InvalidConfig},
		{"min.cleanable.dirty.ratio", sp("0.25"), "0.25", nil},
		{"min.cleanable.dirty.ratio", sp("1"), "1", nil},
		{"min.cleanable.dirty.ratio", sp("1.5"), "", kerr.InvalidConfig},
		{"min.cleanable.dirty.ratio", sp("NaN"), "", kerr.InvalidConfig},
		{"min.insync.replicas", sp("2"), "2", nil},
		{"min.insync.replicas", sp("0"), "", kerr.InvalidConfig},
		{"unclean.leader.election.enable", sp("TRUE"), "true", nil},
		{"unclean.leader.election.enable", sp("yes"), "", kerr.InvalidConfig},
		{"flush.messages", sp("9223372036854775807"), "9223372036854775807", nil},
		{"flush.messages", sp("0"), "", kerr.InvalidConfig},
		{"segment.index.bytes", sp("3"), "", kerr.InvalidConfig},
		{"leader.replication.throttled.replicas", sp("*"), "*", nil},
		{"leader.replication.throttled.replicas", sp("0:1, 1:2"), "0:1,1:2", nil},
		{"follower.replication.throttled.replicas", sp("0-1"), "", kerr.InvalidConfig},
		{"message.format.version", sp("2.8"), "2.8", nil},
		{"message.format.version", sp("3.0-IV1"), "3.0-IV1", nil},
		{"message.format.version", sp("latest"), "", kerr.InvalidConfig},
		{"compression.gzip.level", sp("-1"), "-1", nil},
		{"compression.gzip.level", sp("0"), "", kerr.InvalidConfig},
		{"compression.lz4.level", sp("17"), "17", nil},
		{"compression.lz4.level", sp("18"), "", kerr.InvalidConfig},
		{"compression.zstd.level", sp("-131072"), "-131072", nil},
		{"compression.zstd.level", sp("23"), "", kerr.InvalidConfig},
		{"local.retention.ms", sp("-2"), "-2", nil},
		{"local.retention.bytes", sp("-3"), "", kerr.InvalidConfig},
		{"message.timestamp.after.max.ms", sp("3600000"), "3600000", nil},
		{"compression.type", sp("producer"), "producer", nil},
		{"compression.type", sp("zstd"), "zstd", nil},
		{"compression.type", sp("LZ4"), "lz4", nil},
		{"compression.type", sp("uncompressed"), "uncompressed", nil},
		{"compression.type", sp("brotli"), "", kerr.InvalidConfig},
		{"retention.ms", sp("-1"), "-1", nil},
		{"retention.ms", sp("604800000"), "604800000", nil},
		{"retention.ms", sp("-2"), "", kerr.InvalidConfig},
		{"retention.bytes", sp("-1"), "-1", nil},
		{"retention.bytes", sp("1073741824"), "1073741824", nil},
		{"retention.bytes", sp("ten"), "", kerr.InvalidConfig},
		{"segment.bytes", sp("16777216"), "16777216", nil},
		{"segment.ms", sp("0"), "", kerr.InvalidConfig},
		{"streamhouse.agent.group", sp("team-a"), "team-a", nil},
		{"streamhouse.agent.group", sp(""), "", nil},
		{"streamhouse.agent.group", sp("team a/b"), "", kerr.InvalidConfig},
		{"streamhouse.agent.group", sp(strings.Repeat("g", 250)), "", kerr.InvalidConfig},
		{"segment.bytes", sp("1"), "", kerr.InvalidConfig},
		{"", sp("1"), "", kerr.InvalidConfig},
	} {
		got, err := validateTopicConfig(tc.name, tc.value)
		what := fmt.Sprintf("%s=%v", tc.name, tc.value)
		if tc.value != nil {
			what = fmt.Sprintf("%s=%q", tc.name, *tc.value)
		}
		checkCode(t, what, kafkaCode(err), tc.code)
		if err == nil && got != tc.want {
			t.Errorf("%s: stored %q, want %q", what, got, tc.want)
		}
		if err != nil && tc.name != "" && !strings.Contains(err.Error(), tc.name) {
			t.Errorf("%s: message %q does not name the key", what, err)
		}
	}
	// Every default is a value the config accepts.
	for name, def := range topicConfigDefs {
		if v, err := validateTopicConfig(name, &def.def); err != nil || v != def.def {
			t.Errorf("default of %s: %q, %v", name, v, err)
		}
	}
}

func TestCreateConfigs(t *testing.T) {
	cfg := func(n string, v *string) kmsg.CreateTopicsRequestTopicConfig {
		return kmsg.CreateTopicsRequestTopicConfig{Name: n, Value: v}
	}
	if m, err := createConfigs(nil); m != nil || err != nil {
		t.Errorf("no configs: %v, %v", m, err)
	}
	m, err := createConfigs([]kmsg.CreateTopicsRequestTopicConfig{cfg("max.message.bytes", sp("100")), cfg("cleanup.policy", sp("delete"))})
	if err != nil || len(m) != 2 || m["max.message.bytes"] != "100" {
		t.Errorf("two configs: %v, %v", m, err)
	}
	_, err = createConfigs([]kmsg.CreateTopicsRequestTopicConfig{cfg("max.message.bytes", sp("1")), cfg("max.message.bytes", sp("2"))})
	checkCode(t, "duplicate config", kafkaCode(err), kerr.InvalidRequest)
	_, err = createConfigs([]kmsg.CreateTopicsRequestTopicConfig{cfg("max.message.bytes", nil)})
	checkCode(t, "null config", kafkaCode(err), kerr.InvalidConfig)
}

func TestAlterConfigs(t *testing.T) {
	op := func(name string, o kmsg.IncrementalAlterConfigOp, v *string) kmsg.IncrementalAlterConfigsRequestResourceConfig {
		return kmsg.IncrementalAlterConfigsRequestResourceConfig{Name: name, Op: o, Value: v}
	}
	const (
		set = kmsg.IncrementalAlterConfigOpSet
		del = kmsg.IncrementalAlterConfigOpDelete
		app = kmsg.IncrementalAlterConfigOpAppend
		sub = kmsg.IncrementalAlterConfigOpSubtract
	)
	for _, tc := range []struct {
		what string
		cur  map[string]string
		ops  []kmsg.IncrementalAlterConfigsRequestResourceConfig
		want map[string]string
		code *kerr.Error
	}{
		{"set", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("max.message.bytes", set, sp("10"))},
			map[string]string{"max.message.bytes": "10"}, nil},
		{"set over", map[string]string{"max.message.bytes": "10"}, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("max.message.bytes", set, sp("20"))},
			map[string]string{"max.message.bytes": "20"}, nil},
		{"delete", map[string]string{"max.message.bytes": "10", "cleanup.policy": "delete"},
			[]kmsg.IncrementalAlterConfigsRequestResourceConfig{op("max.message.bytes", del, nil)},
			map[string]string{"cleanup.policy": "delete"}, nil},
		{"delete last", map[string]string{"max.message.bytes": "10"},
			[]kmsg.IncrementalAlterConfigsRequestResourceConfig{op("max.message.bytes", del, nil)}, nil, nil},
		{"delete unset", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", del, nil)}, nil, nil},
		{"no ops", map[string]string{"max.message.bytes": "10"}, nil, map[string]string{"max.message.bytes": "10"}, nil},
		{"keeps configs of a newer version", map[string]string{"future.config": "x"},
			[]kmsg.IncrementalAlterConfigsRequestResourceConfig{op("max.message.bytes", set, sp("5"))},
			map[string]string{"future.config": "x", "max.message.bytes": "5"}, nil},
		{"append to list default", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", app, sp("delete"))},
			map[string]string{"cleanup.policy": "delete"}, nil},
		{"append compact", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", app, sp("compact"))},
			map[string]string{"cleanup.policy": "compact,delete"}, nil},
		{"subtract delete", map[string]string{"cleanup.policy": "compact,delete"},
			[]kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", sub, sp("delete"))},
			map[string]string{"cleanup.policy": "compact"}, nil},
		{"append shred", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", app, sp("shred"))}, nil, kerr.InvalidConfig},
		{"subtract to empty", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", sub, sp("delete"))}, nil, kerr.InvalidConfig},
		{"subtract absent", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("cleanup.policy", sub, sp("compact"))},
			map[string]string{"cleanup.policy": "delete"}, nil},
		{"append to non-list", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("max.message.bytes", app, sp("1"))}, nil, kerr.InvalidConfig},
		{"subtract from non-list", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("retention.ms", sub, sp("-1"))}, nil, kerr.InvalidConfig},
		{"unknown op", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("max.message.bytes", 9, sp("1"))}, nil, kerr.InvalidRequest},
		{"null set", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("max.message.bytes", set, nil)}, nil, kerr.InvalidRequest},
		{"unknown config", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("segment.jitterz.ms", set, sp("1"))}, nil, kerr.InvalidConfig},
		{"unknown config delete", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("segment.jitterz.ms", del, nil)}, nil, kerr.InvalidConfig},
		{"bad value", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{op("message.timestamp.type", set, sp("AppendTime"))}, nil, kerr.InvalidConfig},
		{"duplicate key", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			op("max.message.bytes", set, sp("1")), op("max.message.bytes", del, nil)}, nil, kerr.InvalidRequest},
		{"all or nothing", nil, []kmsg.IncrementalAlterConfigsRequestResourceConfig{
			op("max.message.bytes", set, sp("1")), op("retention.ms", set, sp("-5"))}, nil, kerr.InvalidConfig},
	} {
		before := maps.Clone(tc.cur)
		got, err := alterConfigs(tc.cur, tc.ops)
		checkCode(t, tc.what, kafkaCode(err), tc.code)
		if err == nil && !maps.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
		if !maps.Equal(tc.cur, before) {
			t.Errorf("%s: modified the current configs", tc.what)
		}
	}
}

func TestListOp(t *testing.T) {
	for _, tc := range []struct {
		old, arg string
		app      bool
		want     string
	}{
		{"delete", "compact", true, "delete,compact"},
		{"delete", "delete", true, "delete"},
		{"", "a, b", true, "a,b"},
		{"a,b,c", "b", false, "a,c"},
		{"a,b", "x", false, "a,b"},
		{"a", "a", false, ""},
	} {
		if got := listOp(tc.old, tc.arg, tc.app); got != tc.want {
			t.Errorf("listOp(%q, %q, append=%v) = %q, want %q", tc.old, tc.arg, tc.app, got, tc.want)
		}
	}
}

func TestTopicMaxMessageBytes(t *testing.T) {
	for _, tc := range []struct {
		configs map[string]string
		want    int32
	}{
		{nil, DefaultMaxMessageBytes},
		{map[string]string{"max.message.bytes": "50000"}, 50000},
		{map[string]string{"max.message.bytes": "0"}, 0},
		{map[string]string{"max.message.bytes": "junk"}, DefaultMaxMessageBytes},
		{map[string]string{"max.message.bytes": "-5"}, DefaultMaxMessageBytes},
		{map[string]string{"max.message.bytes": "99999999999"}, DefaultMaxMessageBytes},
	} {
		if got := topicMaxMessageBytes(coord.Topic{Configs: tc.configs}); got != tc.want {
			t.Errorf("topicMaxMessageBytes(%v) = %d, want %d", tc.configs, got, tc.want)
		}
	}
}

func TestDuplicated(t *testing.T) {
	keys := []string{"a", "b", "a", "c", "a", "b"}
	got := duplicated(len(keys), func(i int) string { return keys[i] })
	if !maps.Equal(got, map[string]bool{"a": true, "b": true}) {
		t.Errorf("duplicated = %v", got)
	}
	if got := duplicated(0, func(int) string { panic("called") }); len(got) != 0 {
		t.Errorf("duplicated of nothing = %v", got)
	}
}

func TestAdminWait(t *testing.T) {
	ta := &topicAdmin{maxWait: maxAdminWait}
	for _, tc := range []struct {
		ms   int32
		want time.Duration
	}{{0, 0}, {-1, 0}, {100, 100 * time.Millisecond}, {60000, maxAdminWait}, {1<<31 - 1, maxAdminWait}} {
		if got := ta.waitFor(tc.ms); got != tc.want {
			t.Errorf("waitFor(%d) = %v, want %v", tc.ms, got, tc.want)
		}
	}
}

func TestAwaitView(t *testing.T) {
	f := newFakeTopics()
	ta := newFakeAdmin(t, f)
	ctx := testCtx(t)
	has := func() bool { _, ok := f.Topic("t"); return ok }

	f.freeze(true)
	if _, err := f.CreateTopic(ctx, coord.Topic{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if ta.await(ctx, 50*time.Millisecond, has) {
		t.Fatal("await saw a topic the frozen view does not have")
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Error("await gave up before its time")
	}
	if ta.await(ctx, 0, has) {
		t.Error("await without time saw a topic the frozen view does not have")
	}

	go func() {
		time.Sleep(20 * time.Millisecond)
		f.freeze(false)
	}()
	if !ta.await(ctx, 10*time.Second, has) {
		t.Fatal("await missed the view's change")
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if ta.await(cctx, 10*time.Second, func() bool { return false }) {
		t.Error("await reported done with a cancelled context")
	}
}

func TestAutoCreateTopic(t *testing.T) {
	ctx := testCtx(t)
	on := func(c *Config) { c.AutoCreateTopics = true; c.DefaultPartitions = 3 }

	f := newFakeTopics(coord.Topic{Name: "old", Partitions: 5})
	if _, err := newFakeAdmin(t, f).autoCreate(ctx, "t"); kafkaCode(err) != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("auto creation off: %v", err)
	}
	ta := newFakeAdmin(t, f, on)
	if _, err := ta.autoCreate(ctx, "bad/name"); kafkaCode(err) != kerr.InvalidTopicException.Code {
		t.Errorf("invalid name: %v", err)
	}
	got, err := ta.autoCreate(ctx, "t")
	if err != nil || got.Partitions != 3 || got.ID.IsZero() || len(got.Configs) != 0 {
		t.Fatalf("auto-created %+v, %v", got, err)
	}
	old, _ := f.get("old")
	if got, err := ta.autoCreate(ctx, "old"); err != nil || got.ID != old.ID || got.Partitions != 5 {
		t.Errorf("existing topic: %+v, %v; want it as it is", got, err)
	}

	f.setLeaderless(true)
	if _, err := ta.autoCreate(ctx, "unled"); kafkaCode(err) != kerr.LeaderNotAvailable.Code {
		t.Errorf("partitions never get leaders: %v, want LEADER_NOT_AVAILABLE", err)
	}
	f.setLeaderless(false)
	f.freeze(true)
	if _, err := ta.autoCreate(ctx, "unseen"); kafkaCode(err) != kerr.LeaderNotAvailable.Code {
		t.Errorf("view never shows the topic: %v, want LEADER_NOT_AVAILABLE", err)
	}
}

// FuzzAdminRequests decodes arbitrary bytes as each admin request at each version and answers them:
// nothing may panic, and every answer must encode.
func FuzzAdminRequests(f *testing.F) {
	seeds := []kmsg.Request{
		&kmsg.CreateTopicsRequest{Topics: []kmsg.CreateTopicsRequestTopic{{Topic: "t", NumPartitions: -1, ReplicationFactor: 3,
			Configs: []kmsg.CreateTopicsRequestTopicConfig{{Name: "max.message.bytes", Value: sp("5")}}}}},
		&kmsg.DeleteTopicsRequest{TopicNames: []string{"t", "x"}, Topics: []kmsg.DeleteTopicsRequestTopic{{Topic: sp("t")}, {TopicID: [16]byte{1}}}},
		&kmsg.CreatePartitionsRequest{Topics: []kmsg.CreatePartitionsRequestTopic{{Topic: "t", Count: 4}}},
		&kmsg.DescribeConfigsRequest{Resources: []kmsg.DescribeConfigsRequestResource{{ResourceType: 2, ResourceName: "t"}, {ResourceType: 4, ResourceName: "7"}}},
		&kmsg.IncrementalAlterConfigsRequest{Resources: []kmsg.IncrementalAlterConfigsRequestResource{{ResourceType: 2, ResourceName: "t",
			Configs: []kmsg.IncrementalAlterConfigsRequestResourceConfig{{Name: "cleanup.policy", Op: 2, Value: sp("delete")}}}}},
		&kmsg.DescribeClusterRequest{EndpointType: 1},
	}
	for _, r := range seeds {
		for v := int16(0); v <= r.MaxVersion(); v++ {
			r.SetVersion(v)
			f.Add(r.Key(), v, r.AppendTo(nil))
		}
	}
	f.Fuzz(func(t *testing.T, key, version int16, body []byte) {
		if !supported(key, version) {
			return
		}
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		if req.ReadFrom(body) != nil {
			return
		}
		fake := newFakeTopics(coord.Topic{Name: "t", Partitions: 2, Configs: map[string]string{"max.message.bytes": "9"}})
		ta := newFakeAdmin(t, fake, func(c *Config) { c.AutoCreateTopics = true })
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		var resp kmsg.Response
		switch req := req.(type) {
		case *kmsg.CreateTopicsRequest:
			req.TimeoutMillis = 10
			resp = ta.createTopics(ctx, req)
		case *kmsg.DeleteTopicsRequest:
			req.TimeoutMillis = 10
			resp = ta.deleteTopics(ctx, req)
		case *kmsg.CreatePartitionsRequest:
			req.TimeoutMillis = 10
			resp = ta.createPartitions(ctx, req)
		case *kmsg.DescribeConfigsRequest:
			resp = ta.describeConfigs(req)
		case *kmsg.IncrementalAlterConfigsRequest:
			resp = ta.alterConfigs(ctx, req)
		case *kmsg.DescribeClusterRequest:
			resp = describeCluster(req, 7, []coord.AgentInfo{{ID: "a1", Addr: "h:1"}}, nodeID)
		default:
			return
		}
		if resp.GetVersion() != version {
			t.Fatalf("%s v%d answered at v%d", kmsg.NameForKey(key), version, resp.GetVersion())
		}
		back := kmsg.ResponseForKey(key)
		back.SetVersion(version)
		if err := back.ReadFrom(resp.AppendTo(nil)); err != nil {
			t.Fatalf("%s v%d: answer does not decode: %v", kmsg.NameForKey(key), version, err)
		}
	})
}

// TestOtherGroupsTopics checks that a topic bound to another agent group does not exist for the admin
// APIs of this group, but that its name stays taken.
func TestOtherGroupsTopics(t *testing.T) {
	ctx := testCtx(t)
	f := newFakeTopics(coord.Topic{Name: "theirs", Partitions: 1, Configs: map[string]string{configAgentGroup: "g2"}},
		coord.Topic{Name: "ours", Partitions: 1, Configs: map[string]string{configAgentGroup: "default"}})
	ta := newFakeAdmin(t, f, func(c *Config) { c.AutoCreateTopics = true })
	theirs, _ := f.get("theirs")

	r := ta.describeConfigs(describeReq(4, topicResource("theirs"), topicResource("ours"))).Resources
	checkCode(t, "describe theirs", r[0].ErrorCode, kerr.UnknownTopicOrPartition)
	checkCode(t, "describe ours", r[1].ErrorCode, nil)

	checkCode(t, "alter theirs", ta.alterConfigs(ctx, alterReq(alterTopic("theirs", "max.message.bytes", "set", "1"))).Resources[0].ErrorCode,
		kerr.UnknownTopicOrPartition)
	checkCode(t, "grow theirs", ta.createPartitions(ctx, partitionsReq(grow("theirs", 5))).Topics[0].ErrorCode,
		kerr.UnknownTopicOrPartition)
	del := ta.deleteTopics(ctx, deleteReqV6(byName("theirs"), byID(theirs.ID))).Topics
	checkCode(t, "delete theirs by name", del[0].ErrorCode, kerr.UnknownTopicOrPartition)
	checkCode(t, "delete theirs by id", del[1].ErrorCode, kerr.UnknownTopicID)
	checkCode(t, "create theirs", ta.createTopics(ctx, createReq(7, newTopic("theirs", 1, 1))).Topics[0].ErrorCode,
		kerr.TopicAlreadyExists)
	if _, err := ta.autoCreate(ctx, "theirs"); kafkaCode(err) != kerr.UnknownTopicOrPartition.Code {
		t.Errorf("auto-create of theirs: %v", err)
	}
	if got, _ := f.get("theirs"); got.Partitions != 1 || len(got.Configs) != 1 || f.writeCount() != 0 {
		t.Errorf("their topic changed: %+v, %d writes", got, f.writeCount())
	}

	// Handing our topic to g2 is allowed; then it is theirs.
	checkCode(t, "hand over", ta.alterConfigs(ctx, alterReq(alterTopic("ours", configAgentGroup, "set", "g2"))).Resources[0].ErrorCode, nil)
	checkCode(t, "describe handed over", ta.describeConfigs(describeReq(4, topicResource("ours"))).Resources[0].ErrorCode,
		kerr.UnknownTopicOrPartition)
}

func (f *fakeTopics) Topics() []coord.Topic {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []coord.Topic
	for _, t := range f.shown {
		out = append(out, cloneTopic(t))
	}
	return out
}
