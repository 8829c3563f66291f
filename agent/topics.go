package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// This file holds what the admin APIs (CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs,
// IncrementalAlterConfigs) share: topic-name rules, the topic configs StreamHouse supports, the errors
// they answer with, and the wait for the watched view to show what a request wrote.

const (
	maxTopicNameLen       = 249   // Kafka's limit
	maxPartitionsPerTopic = 10000 // every partition is etcd keys, a leader and a share of each flush

	// maxAdminWait bounds how long an admin request waits for this agent's watched view to show
	// what it wrote to etcd. That takes milliseconds; past this the watch is in trouble.
	maxAdminWait = 5 * time.Second
)

// Topic configs StreamHouse supports.
const (
	configMaxMessageBytes = "max.message.bytes"
	configTimestampType   = "message.timestamp.type"
	configCleanupPolicy   = "cleanup.policy"
	configCompressionType = "compression.type"
	configRetentionMs     = "retention.ms"
	configRetentionBytes  = "retention.bytes"
	configSegmentBytes    = "segment.bytes"
	configSegmentMs       = "segment.ms"
	configAgentGroup      = "streamhouse.agent.group"
)

// topicConfigDef is one supported topic config.
type topicConfigDef struct {
	def   string
	typ   kmsg.ConfigType
	doc   string
	parse func(string) (string, error) // the canonical form of a (trimmed) value, or why it is refused
}

// topicConfigDefs are the topic configs StreamHouse supports: the ones it honours here, Kafka's others
// (topic_configs_kafka.go) with them. A value Kafka would refuse gets INVALID_CONFIG.
var topicConfigDefs = withKafkaConfigs(map[string]topicConfigDef{
	configMaxMessageBytes: {
		def:   strconv.Itoa(DefaultMaxMessageBytes),
		typ:   kmsg.ConfigTypeInt,
		doc:   "The largest record batch, in bytes, a produce request may carry for this topic.",
		parse: parseIntAtLeast(0),
	},
	configTimestampType: {
		def: "CreateTime",
		typ: kmsg.ConfigTypeString,
		doc: "CreateTime: record timestamps are the producer's. LogAppendTime: the agent stamps each batch " +
			"with its clock on receipt (the batch's timestamp type and max timestamp, its CRC computed anew), as Kafka does.",
		parse: parseTimestampType,
	},
	configCleanupPolicy: {
		def: "delete",
		typ: kmsg.ConfigTypeList,
		doc: "delete: retention.ms and retention.bytes remove old segments; compact: the latest record of each " +
			"key is kept and older ones are removed by the cleaner (docs/OPERATING.md, \"Compacted topics\"); " +
			"compact,delete: both.",
		parse: parseCleanupPolicyList,
	},
	configCompressionType: {
		def: "producer",
		typ: kmsg.ConfigTypeString,
		doc: "producer: batches are stored as the producer compressed them. uncompressed, gzip, snappy, lz4, zstd: " +
			"a batch in another codec is compressed again with this one on receipt (at compression.<codec>.level), as Kafka's broker does.",
		parse: parseCompressionType,
	},
	configRetentionMs: {
		def: strconv.FormatInt(DefaultRetention.Milliseconds(), 10),
		typ: kmsg.ConfigTypeLong,
		doc: "How long a record is kept, in milliseconds; -1 keeps records forever. Whole segments go once their " +
			"newest record is older (the log start moves past them). Default: the agents' --default-retention-ms.",
		parse: parseInt64AtLeast(-1),
	},
	configRetentionBytes: {
		def: "-1",
		typ: kmsg.ConfigTypeLong,
		doc: "The bytes a partition keeps at least; older segments go while what remains is at least this; -1: no " +
			"limit. Default: the agents' --default-retention-bytes.",
		parse: parseInt64AtLeast(-1),
	},
	configSegmentBytes: {
		def: strconv.Itoa(1 << 30),
		typ: kmsg.ConfigTypeInt,
		doc: "The largest partition segment compaction makes, in bytes: the granularity of retention. Segments " +
			"are merged in levels up to it (docs/OPERATING.md).",
		parse: parseIntAtLeast(14),
	},
	configSegmentMs: {
		def: strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10),
		typ: kmsg.ConfigTypeLong,
		doc: "The longest time the records of one partition segment span, in milliseconds: compaction does not " +
			"merge segments past it, so that retention can drop old records in time.",
		parse: parseInt64AtLeast(1),
	},
	configAgentGroup: {
		def: "",
		typ: kmsg.ConfigTypeString,
		doc: "The agent group that leads and serves this topic; empty: every group. Clients of other " +
			"groups do not see the topic.",
		parse: parseAgentGroup,
	},
})

// topicConfigNames are the supported topic configs, sorted: the order DescribeConfigs lists them in.
var topicConfigNames = slices.Sorted(maps.Keys(topicConfigDefs))

// topicMaxMessageBytes is the largest batch a produce request may carry for t.
func topicMaxMessageBytes(t coord.Topic) int32 {
	if v, ok := t.Configs[configMaxMessageBytes]; ok {
		if n, err := strconv.ParseInt(v, 10, 32); err == nil && n >= 0 {
			return int32(n)
		}
	}
	return DefaultMaxMessageBytes
}

// validateTopicName applies Kafka's rules for topic names. The legal characters also keep names safe
// as etcd key components.
func validateTopicName(name string) error {
	switch {
	case name == "":
		return adminErrorf(kerr.InvalidTopicException, "topic name is empty")
	case name == "." || name == "..":
		return adminErrorf(kerr.InvalidTopicException, "topic name cannot be %q", name)
	case len(name) > maxTopicNameLen:
		return adminErrorf(kerr.InvalidTopicException, "topic name %s is longer than %d characters",
			quoteShort(name), maxTopicNameLen)
	}
	for i := 0; i < len(name); i++ {
		if !legalNameByte(name[i]) {
			return adminErrorf(kerr.InvalidTopicException,
				"topic name %s is illegal: it contains a character other than ASCII letters, digits, '.', '_' and '-'",
				quoteShort(name))
		}
	}
	return nil
}

func legalNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validateAgentGroup is the rule for agent group names in topic configs: the characters of topic names
// (so that a group can become part of a key or a label), at most 249 of them; empty means every group.
func validateAgentGroup(g string) error {
	if len(g) > maxTopicNameLen {
		return fmt.Errorf("agent group longer than %d characters", maxTopicNameLen)
	}
	for i := 0; i < len(g); i++ {
		if !legalNameByte(g[i]) {
			return errors.New("agent group names use only ASCII letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// quoteShort quotes a client-supplied string for an error message, cut short so that a huge name is
// not echoed back whole.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// validateTopicConfig checks one config a client sets and returns the value to store.
func validateTopicConfig(name string, value *string) (string, error) {
	def, ok := topicConfigDefs[name]
	if !ok {
		return "", adminErrorf(kerr.InvalidConfig, "unknown topic config %s", quoteShort(name))
	}
	if value == nil {
		return "", adminErrorf(kerr.InvalidConfig, "topic config %s: null value", name)
	}
	v, err := def.parse(strings.TrimSpace(*value))
	if err != nil {
		return "", adminErrorf(kerr.InvalidConfig, "invalid value %s for topic config %s: %v", quoteShort(*value), name, err)
	}
	return v, nil
}

// createConfigs validates the configs of a CreateTopics topic and returns those to store.
func createConfigs(cfgs []kmsg.CreateTopicsRequestTopicConfig) (map[string]string, error) {
	if len(cfgs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(cfgs))
	for _, c := range cfgs {
		if _, dup := out[c.Name]; dup {
			return nil, adminErrorf(kerr.InvalidRequest, "topic config %s given more than once", quoteShort(c.Name))
		}
		v, err := validateTopicConfig(c.Name, c.Value)
		if err != nil {
			return nil, err
		}
		out[c.Name] = v
	}
	if err := validateTopicConfigSet(out); err != nil {
		return nil, err
	}
	return out, nil
}

// alterConfigs applies IncrementalAlterConfigs operations to a topic's stored configs, returning the new
// configs (cur is not modified) or the first operation's error. APPEND and SUBTRACT start, as in Kafka,
// from the stored value or else the default.
func alterConfigs(cur map[string]string, ops []kmsg.IncrementalAlterConfigsRequestResourceConfig) (map[string]string, error) {
	next := maps.Clone(cur)
	if next == nil {
		next = map[string]string{}
	}
	seen := make(map[string]bool, len(ops))
	for _, op := range ops {
		if seen[op.Name] {
			return nil, adminErrorf(kerr.InvalidRequest, "topic config %s altered more than once", quoteShort(op.Name))
		}
		seen[op.Name] = true
		def, ok := topicConfigDefs[op.Name]
		if !ok {
			return nil, adminErrorf(kerr.InvalidConfig, "unknown topic config %s", quoteShort(op.Name))
		}
		if op.Op != kmsg.IncrementalAlterConfigOpDelete && op.Value == nil {
			return nil, adminErrorf(kerr.InvalidRequest, "topic config %s: null value for %s", op.Name, op.Op)
		}
		var raw string
		switch op.Op {
		case kmsg.IncrementalAlterConfigOpDelete:
			delete(next, op.Name)
			continue
		case kmsg.IncrementalAlterConfigOpSet:
			raw = *op.Value
		case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
			if def.typ != kmsg.ConfigTypeList {
				return nil, adminErrorf(kerr.InvalidConfig, "topic config %s is not a list: %s is not allowed", op.Name, op.Op)
			}
			old, ok := next[op.Name]
			if !ok {
				old = def.def
			}
			raw = listOp(old, *op.Value, op.Op == kmsg.IncrementalAlterConfigOpAppend)
		default:
			return nil, adminErrorf(kerr.InvalidRequest, "topic config %s: unknown operation %d", op.Name, op.Op)
		}
		v, err := validateTopicConfig(op.Name, &raw)
		if err != nil {
			return nil, err
		}
		next[op.Name] = v
	}
	if len(next) == 0 {
		return nil, nil
	}
	if err := validateTopicConfigSet(next); err != nil {
		return nil, err
	}
	return next, nil
}

// listOp appends the items of arg that old lacks, or removes from old every item of arg.
func listOp(old, arg string, appendItems bool) string {
	items := splitList(old)
	args := splitList(arg)
	if appendItems {
		for _, a := range args {
			if !slices.Contains(items, a) {
				items = append(items, a)
			}
		}
	} else {
		items = slices.DeleteFunc(items, func(s string) bool { return slices.Contains(args, s) })
	}
	return strings.Join(items, ",")
}

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func parseIntAtLeast(min int64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return "", errors.New("not a 32-bit integer")
		}
		if n < min {
			return "", fmt.Errorf("must be at least %d", min)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func parseInt64AtLeast(min int64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return "", errors.New("not a 64-bit integer")
		}
		if n < min {
			return "", fmt.Errorf("must be at least %d", min)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

func parseAgentGroup(v string) (string, error) {
	if err := validateAgentGroup(v); err != nil {
		return "", err
	}
	return v, nil
}

// configEntry is one config as DescribeConfigs and CreateTopics report it.
type configEntry struct {
	name     string
	value    *string
	source   kmsg.ConfigSource
	typ      kmsg.ConfigType
	readOnly bool
	doc      string
	synonyms []configSynonym // in order of precedence, the entry itself first, as Kafka lists them
}

type configSynonym struct {
	name   string
	value  *string
	source kmsg.ConfigSource
}

// clusterTopicDefaults are the topic configs whose default is the cluster's (the agents' flags), not
// a constant.
func clusterTopicDefaults(cfg *Config) map[string]string {
	ms := cfg.DefaultRetention.Milliseconds()
	if cfg.DefaultRetention < 0 {
		ms = -1
	}
	return map[string]string{
		configRetentionMs:    strconv.FormatInt(ms, 10),
		configRetentionBytes: strconv.FormatInt(cfg.DefaultRetentionBytes, 10),
	}
}

// topicConfigEntries are every supported config of t with its effective value; defaults override the
// constant defaults (clusterTopicDefaults).
func topicConfigEntries(t coord.Topic, defaults map[string]string) []configEntry {
	out := make([]configEntry, 0, len(topicConfigNames))
	for _, name := range topicConfigNames {
		def := topicConfigDefs[name]
		dv := def.def
		if v, ok := defaults[name]; ok {
			dv = v
		}
		e := configEntry{name: name, value: &dv, source: kmsg.ConfigSourceDefaultConfig, typ: def.typ, doc: def.doc}
		e.synonyms = []configSynonym{{name: name, value: &dv, source: kmsg.ConfigSourceDefaultConfig}}
		if v, ok := t.Configs[name]; ok {
			e.value, e.source = &v, kmsg.ConfigSourceDynamicTopicConfig
			e.synonyms = append([]configSynonym{{name: name, value: &v, source: e.source}}, e.synonyms...)
		}
		out = append(out, e)
	}
	return out
}

func (e configEntry) describe(synonyms, docs bool) kmsg.DescribeConfigsResponseResourceConfig {
	rc := kmsg.NewDescribeConfigsResponseResourceConfig()
	rc.Name, rc.Value, rc.Source, rc.ConfigType = e.name, e.value, e.source, e.typ
	rc.ReadOnly = e.readOnly
	rc.IsDefault = e.source == kmsg.ConfigSourceDefaultConfig
	if synonyms {
		for _, s := range e.synonyms {
			syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
			syn.Name, syn.Value, syn.Source = s.name, s.value, s.source
			rc.ConfigSynonyms = append(rc.ConfigSynonyms, syn)
		}
	}
	if docs && e.doc != "" {
		doc := e.doc
		rc.Documentation = &doc
	}
	return rc
}

func (e configEntry) created() kmsg.CreateTopicsResponseTopicConfig {
	c := kmsg.NewCreateTopicsResponseTopicConfig()
	c.Name, c.Value, c.ReadOnly, c.Source = e.name, e.value, e.readOnly, int8(e.source)
	return c
}

// adminError is a failure of one resource of an admin request: the Kafka error and the message the
// client gets in ErrorMessage. kafkaCode finds the code through Unwrap.
type adminError struct {
	code *kerr.Error
	msg  string
}

func (e *adminError) Error() string { return e.msg }
func (e *adminError) Unwrap() error { return e.code }

func adminErrorf(code *kerr.Error, format string, args ...any) error {
	return &adminError{code: code, msg: fmt.Sprintf(format, args...)}
}

// errDryRun aborts an UpdateTopic whose checks passed, for requests with ValidateOnly: the checks run
// against the topic as stored in etcd, and nothing is written.
var errDryRun = errors.New("agent: validate only")

// topicStore is what the admin APIs write to etcd (*coord.Client).
type topicStore interface {
	CreateTopic(ctx context.Context, t coord.Topic) (coord.Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	UpdateTopic(ctx context.Context, name string, fn func(*coord.Topic) error) (coord.Topic, error)
}

// topicView is what they read of the watched view (*coord.Cache).
type topicView interface {
	Topic(name string) (coord.Topic, bool)
	Topics() []coord.Topic
	TopicByID(id coord.TopicID) (coord.Topic, bool)
	Changed() <-chan struct{}
}

// topicAdmin answers the admin APIs. It is the agent's etcd client and watched view behind the two
// small interfaces above, so that the APIs' rules are tested without etcd.
//
// A topic bound to another agent group does not exist for the admin APIs either, as for Metadata: a
// client of one group cannot describe, alter, grow or delete another group's topics. Names are global,
// though, so creating a name another group uses is TOPIC_ALREADY_EXISTS.
type topicAdmin struct {
	store   topicStore
	view    topicView
	serves  func(coord.Topic) bool // whether this agent's group serves the topic
	led     func(coord.TP) bool    // whether the partition has a live leader, as Metadata names one
	cfg     *Config
	node    int32         // this agent's Kafka node id
	maxWait time.Duration // for the view to show a change: maxAdminWait but in tests
	log     hclog.Logger
	// limitHit counts a limit's refusal (nil in tests without metrics).
	limitHit func(limit string)
}

func (a *Agent) topicAdmin() *topicAdmin {
	return &topicAdmin{store: a.etcd, view: a.cache, serves: a.servesTopic, led: a.hasLiveLeader, cfg: &a.cfg,
		node: a.nodeID(a.cfg.ID), maxWait: maxAdminWait, log: a.log, limitHit: a.limitHit}
}

// hasLiveLeader reports whether tp's leader key names a registered agent: a partition Metadata lists
// with a leader rather than LEADER_NOT_AVAILABLE.
func (a *Agent) hasLiveLeader(tp coord.TP) bool {
	l, ok := a.cache.Leader(tp)
	if !ok {
		return false
	}
	_, live := a.agentAddr(l.Agent)
	return live
}

// allLed reports whether every partition of t has a live leader.
func (ta *topicAdmin) allLed(t coord.Topic) bool {
	for p := range t.Partitions {
		if !ta.led(t.TP(p)) {
			return false
		}
	}
	return true
}

// servedTopic looks a topic up in the view, as this agent's group sees it.
func (ta *topicAdmin) servedTopic(name string) (coord.Topic, bool) {
	t, ok := ta.view.Topic(name)
	return t, ok && ta.serves(t)
}

// answer is the error code and message of one resource's outcome. Failures other than the request's
// own (etcd unavailable, say) are logged and mapped by kafkaCode, with their text as the message.
func (ta *topicAdmin) answer(err error) (int16, *string) {
	if err == nil {
		return 0, nil
	}
	var ae *adminError
	if !errors.As(err, &ae) && !errors.Is(err, context.Canceled) {
		ta.log.Warn("admin request failed", "error", err)
	}
	msg := err.Error()
	return kafkaCode(err), &msg
}

// await waits until done reports true of the watched view, for at most d and while ctx lasts, and
// reports whether it did. Kafka clients use a topic right after CreateTopics answers, and the view
// follows etcd through a watch: without the wait this agent could deny a topic it just created.
func (ta *topicAdmin) await(ctx context.Context, d time.Duration, done func() bool) bool {
	if d <= 0 {
		return done()
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return coord.WaitFor(ctx, ta.view, done)
}

// awaitEach waits up to d for ok to hold of every topic of items (a response's index to the topic it
// changed), and returns the indexes of those it does not hold of by then.
func (ta *topicAdmin) awaitEach(ctx context.Context, d time.Duration, items map[int]coord.Topic, ok func(coord.Topic) bool) []int {
	if d <= 0 || len(items) == 0 {
		return nil
	}
	ta.await(ctx, d, func() bool {
		for _, t := range items {
			if !ok(t) {
				return false
			}
		}
		return true
	})
	var late []int
	for i, t := range items {
		if !ok(t) {
			late = append(late, i)
		}
	}
	return late
}

// waitFor is how long a request with this timeout waits for the view: 0 (no wait, as Kafka with a
// timeout of 0) up to maxWait.
func (ta *topicAdmin) waitFor(timeoutMillis int32) time.Duration {
	if timeoutMillis <= 0 {
		return 0
	}
	return min(time.Duration(timeoutMillis)*time.Millisecond, ta.maxWait)
}

// errNotVisible answers a change that is in etcd but that this agent's view has not shown in time.
func errNotVisible(what string) error {
	return adminErrorf(kerr.RequestTimedOut, "%s, but this agent has not seen the change yet; retry", what)
}

// sameTopic reports whether the view has topic t under its name and id.
func (ta *topicAdmin) sameTopic(t coord.Topic) (coord.Topic, bool) {
	v, ok := ta.view.Topic(t.Name)
	return v, ok && v.ID == t.ID
}

// autoCreateTopic creates a topic that a Metadata or Produce request named, as Kafka's
// auto.create.topics.enable, with the default partition count and no configs. A topic someone else
// created first is returned as it is. It returns once every partition has a leader, as a client
// writes to the topic at once: a partition listed without one fails the writes of clients that do not
// retry that (segmentio/kafka-go). A topic still unled after maxWait is LEADER_NOT_AVAILABLE, which
// clients retry. Errors carry their Kafka code (see kafkaCode).
func (a *Agent) autoCreateTopic(ctx context.Context, name string) (coord.Topic, error) {
	return a.topicAdmin().autoCreate(ctx, name)
}

func (ta *topicAdmin) autoCreate(ctx context.Context, name string) (coord.Topic, error) {
	if !ta.cfg.AutoCreateTopics {
		return coord.Topic{}, adminErrorf(kerr.UnknownTopicOrPartition, "unknown topic %s (auto creation is off)", quoteShort(name))
	}
	if err := validateTopicName(name); err != nil {
		return coord.Topic{}, err
	}
	if ta.cfg.DefaultPartitions > maxPartitionsPerTopic {
		return coord.Topic{}, adminErrorf(kerr.InvalidPartitions, "default partition count %d is above the limit of %d",
			ta.cfg.DefaultPartitions, maxPartitionsPerTopic)
	}
	if _, ok := ta.view.Topic(name); !ok {
		if err := ta.checkClusterPartitions(ta.clusterPartitions(), int64(ta.cfg.DefaultPartitions)); err != nil {
			return coord.Topic{}, err
		}
	}
	t, err := ta.store.CreateTopic(ctx, coord.Topic{Name: name, ID: coord.NewTopicID(), Partitions: ta.cfg.DefaultPartitions})
	created := err == nil
	if err != nil && !errors.Is(err, coord.ErrTopicExists) {
		return coord.Topic{}, err
	}
	var got coord.Topic
	var seen bool
	ta.await(ctx, ta.maxWait, func() bool {
		if created {
			got, seen = ta.sameTopic(t)
		} else {
			got, seen = ta.view.Topic(name)
		}
		return seen && (!ta.serves(got) || ta.allLed(got))
	})
	switch {
	case !seen:
		return coord.Topic{}, adminErrorf(kerr.LeaderNotAvailable, "topic %s was created but this agent has not seen it yet", quoteShort(name))
	case !ta.serves(got):
		return coord.Topic{}, errUnknownTopic(name) // another group's, created meanwhile
	case !ta.allLed(got):
		return coord.Topic{}, adminErrorf(kerr.LeaderNotAvailable, "topic %s was created but its partitions have no leader yet", quoteShort(name))
	}
	if created {
		ta.log.Info("topic auto-created", "topic", name, "partitions", t.Partitions)
	}
	return got, nil
}

// duplicated returns the keys that occur more than once among n items.
func duplicated[K comparable](n int, key func(int) K) map[K]bool {
	seen := make(map[K]bool, n)
	var dup map[K]bool
	for i := range n {
		k := key(i)
		if seen[k] {
			if dup == nil {
				dup = map[K]bool{}
			}
			dup[k] = true
		}
		seen[k] = true
	}
	return dup
}

// servesTopic reports whether this agent's group may serve t (topics bound to another agent group are
// invisible to it).
func (a *Agent) servesTopic(t coord.Topic) bool {
	g := t.Configs[configAgentGroup]
	return g == "" || g == a.cfg.Group
}
