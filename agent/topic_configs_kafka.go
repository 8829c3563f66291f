package agent

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The rest of Kafka's topic configs (Kafka 3.9 and 4.x), so that any tool may set any of them: those for
// compacted topics, which the cleaner honours, and those that S3 storage makes moot, which are accepted
// with Kafka's validation, stored, and described with what they mean here (docs/INTERNALS.md, "Topic
// configs"). topicConfigDefs holds these together with topics.go's own.

const (
	configDeleteRetentionMs   = "delete.retention.ms"
	configMinCompactionLagMs  = "min.compaction.lag.ms"
	configMaxCompactionLagMs  = "max.compaction.lag.ms"
	configMinCleanableRatio   = "min.cleanable.dirty.ratio"
	configRemoteStorageEnable = "remote.storage.enable"

	// DefaultDeleteRetentionMs is Kafka's delete.retention.ms: how long a tombstone stays after the
	// segment holding it was cleaned.
	DefaultDeleteRetentionMs = 24 * 60 * 60 * 1000
)

const (
	docMoot      = " Accepted and stored for Kafka tools; it has no effect here: "
	docS3        = "records are durable in S3 before they are acknowledged, and no agent holds a replica."
	docNoDisk    = "agents keep no log files."
	docNoReplica = "there are no follower replicas to throttle."
	maxLongStr   = "9223372036854775807"
)

// kafkaTopicConfigDefs are added to topicConfigDefs.
var kafkaTopicConfigDefs = map[string]topicConfigDef{
	configDeleteRetentionMs: {def: strconv.Itoa(DefaultDeleteRetentionMs), typ: kmsg.ConfigTypeLong,
		doc: "How long a tombstone (a record with a null value) of a compacted topic is kept after the segment " +
			"holding it was cleaned, in milliseconds, so that consumers reading behind see the delete.",
		parse: parseInt64AtLeast(0)},
	configMinCompactionLagMs: {def: "0", typ: kmsg.ConfigTypeLong,
		doc:   "The least time a record stays uncompacted, in milliseconds: segments with newer records are not cleaned.",
		parse: parseInt64AtLeast(0)},
	configMaxCompactionLagMs: {def: maxLongStr, typ: kmsg.ConfigTypeLong,
		doc: "The most time a record stays uncompacted, in milliseconds: a partition whose oldest uncleaned " +
			"record is older is cleaned whatever its dirty ratio (within a maintenance interval and the clean's time).",
		parse: parseInt64AtLeast(1)},
	configMinCleanableRatio: {def: "0.5", typ: kmsg.ConfigTypeDouble,
		doc: "A compacted partition is cleaned once its uncleaned bytes are at least this fraction of its " +
			"segments' bytes (the tail not yet in segments is not counted).",
		parse: parseRatio},

	"segment.jitter.ms": moot(kmsg.ConfigTypeLong, "0", parseInt64AtLeast(0),
		"segments are made by merges, by size and span, not rolled by time."),
	"segment.index.bytes": moot(kmsg.ConfigTypeInt, "10485760", parseIntAtLeast(4),
		"a segment's index is its footer, one row per 64 KiB block."),
	"index.interval.bytes": moot(kmsg.ConfigTypeInt, "4096", parseIntAtLeast(0),
		"a segment's index is its footer, one row per 64 KiB block."),
	"flush.messages": moot(kmsg.ConfigTypeLong, maxLongStr, parseInt64AtLeast(1), docS3),
	"flush.ms":       moot(kmsg.ConfigTypeLong, maxLongStr, parseInt64AtLeast(0), docS3),
	"file.delete.delay.ms": moot(kmsg.ConfigTypeLong, "60000", parseInt64AtLeast(0),
		"objects no longer referenced are deleted by GC after its grace periods (--gc-grace)."),
	"min.insync.replicas": moot(kmsg.ConfigTypeInt, "1", parseIntAtLeast(1), docS3),
	"unclean.leader.election.enable": moot(kmsg.ConfigTypeBoolean, "false", parseBool,
		"every agent can lead every partition from S3 and etcd; no leader election loses data."),
	"preallocate": moot(kmsg.ConfigTypeBoolean, "false", parseBool, docNoDisk),
	"leader.replication.throttled.replicas": moot(kmsg.ConfigTypeList, "", parseThrottledReplicas,
		docNoReplica),
	"follower.replication.throttled.replicas": moot(kmsg.ConfigTypeList, "", parseThrottledReplicas,
		docNoReplica),
	"message.downconversion.enable": moot(kmsg.ConfigTypeBoolean, "true", parseBool,
		"batches are served as stored (magic 2); Fetch versions below 4 are answered with them too."),
	"message.format.version": moot(kmsg.ConfigTypeString, "3.0-IV1", parseFormatVersion,
		"batches are stored as the producer sent them (magic 2)."),
	configRemoteStorageEnable: moot(kmsg.ConfigTypeBoolean, "false", parseBool,
		"every byte is in S3 already; as in Kafka, true is refused for a compacted topic."),
	"remote.log.copy.disable":      moot(kmsg.ConfigTypeBoolean, "false", parseBool, "every byte is in S3 already."),
	"remote.log.delete.on.disable": moot(kmsg.ConfigTypeBoolean, "false", parseBool, "every byte is in S3 already."),
	"local.retention.ms":           moot(kmsg.ConfigTypeLong, "-2", parseInt64AtLeast(-2), docNoDisk),
	"local.retention.bytes":        moot(kmsg.ConfigTypeLong, "-2", parseInt64AtLeast(-2), docNoDisk),
	"compression.gzip.level": {def: "-1", typ: kmsg.ConfigTypeInt, parse: parseLevel(-1, 1, 9),
		doc: "The gzip level of batches compressed again for compression.type=gzip: 1-9, -1 the codec's default."},
	"compression.lz4.level": {def: "9", typ: kmsg.ConfigTypeInt, parse: parseLevel(math.MinInt32, 1, 17),
		doc: "The lz4 level of batches compressed again for compression.type=lz4: 1 the fast compressor, 2-17 the " +
			"high-compression ones (the strongest of the agent's library at 9 and above)."},
	"compression.zstd.level": {def: "3", typ: kmsg.ConfigTypeInt, parse: parseLevel(math.MinInt32, -131072, 22),
		doc: "The zstd level of batches compressed again for compression.type=zstd, -131072 to 22, mapped to the " +
			"nearest of the agent's encoder's four speeds (fastest below 3, default 3-5, better 6-9, best 10 and above)."},
	configTimestampDiff: {def: maxLongStr, typ: kmsg.ConfigTypeLong, parse: parseInt64AtLeast(0),
		doc: "Deprecated by Kafka: the default of message.timestamp.before.max.ms and after.max.ms."},
	configTimestampBefore: {def: maxLongStr, typ: kmsg.ConfigTypeLong, parse: parseInt64AtLeast(0),
		doc: "On a CreateTime topic, a batch with a record timestamped more than this before the agent's clock is " +
			"refused with INVALID_TIMESTAMP."},
	configTimestampAfter: {def: maxLongStr, typ: kmsg.ConfigTypeLong, parse: parseInt64AtLeast(0),
		doc: "On a CreateTime topic, a batch with a record timestamped more than this after the agent's clock is " +
			"refused with INVALID_TIMESTAMP."},
}

// moot is a config S3 storage makes moot: accepted with Kafka's validation and stored.
func moot(typ kmsg.ConfigType, def string, parse func(string) (string, error), why string) topicConfigDef {
	return topicConfigDef{def: def, typ: typ, doc: "Kafka's config." + docMoot + why, parse: parse}
}

// withKafkaConfigs adds kafkaTopicConfigDefs to defs.
func withKafkaConfigs(defs map[string]topicConfigDef) map[string]topicConfigDef {
	for name, d := range kafkaTopicConfigDefs {
		defs[name] = d
	}
	return defs
}

func parseBool(v string) (string, error) {
	switch strings.ToLower(v) {
	case "true":
		return "true", nil
	case "false":
		return "false", nil
	}
	return "", errors.New("not true or false")
}

func parseRatio(v string) (string, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) {
		return "", errors.New("not a number")
	}
	if f < 0 || f > 1 {
		return "", errors.New("must be between 0 and 1")
	}
	return strconv.FormatFloat(f, 'g', -1, 64), nil
}

// parseLevel accepts a compression level within [lo, hi], or special (Kafka's gzip default, -1).
func parseLevel(special, lo, hi int64) func(string) (string, error) {
	return func(v string) (string, error) {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil {
			return "", errors.New("not a 32-bit integer")
		}
		if n != special && (n < lo || n > hi) {
			return "", fmt.Errorf("must be between %d and %d", lo, hi)
		}
		return strconv.FormatInt(n, 10), nil
	}
}

var throttledReplica = regexp.MustCompile(`^[0-9]+:[0-9]+$`)

// parseThrottledReplicas is Kafka's validation of the throttled replica lists: empty, "*", or
// partition:broker pairs.
func parseThrottledReplicas(v string) (string, error) {
	items := splitList(v)
	if len(items) == 1 && items[0] == "*" {
		return "*", nil
	}
	for _, it := range items {
		if !throttledReplica.MatchString(it) {
			return "", fmt.Errorf("%s is not * or a list of partition:broker", quoteShort(it))
		}
	}
	return strings.Join(items, ","), nil
}

var formatVersion = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?(-IV[0-9]+)?$`)

// parseFormatVersion accepts what Kafka's metadata version validator accepts in shape (0.10.0, 2.8,
// 3.0-IV1); which versions exist is not checked: the value has no effect.
func parseFormatVersion(v string) (string, error) {
	if !formatVersion.MatchString(v) {
		return "", errors.New("not a Kafka version such as 3.0-IV1")
	}
	return v, nil
}

// parseCleanupPolicyList is Kafka's cleanup.policy: a non-empty list of compact and delete.
func parseCleanupPolicyList(v string) (string, error) {
	items := splitList(v)
	if len(items) == 0 {
		return "", errors.New("must be compact, delete or both")
	}
	var out []string
	for _, it := range items {
		if it != "compact" && it != "delete" {
			return "", fmt.Errorf("%s is neither compact nor delete", quoteShort(it))
		}
		if !slices.Contains(out, it) {
			out = append(out, it)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ","), nil
}

// validateTopicConfigSet checks what Kafka checks across a topic's configs once each is valid: the
// compaction lags in order, and no tiered storage for a compacted topic.
func validateTopicConfigSet(cfgs map[string]string) error {
	value := func(name string) string {
		if v, ok := cfgs[name]; ok {
			return v
		}
		return topicConfigDefs[name].def
	}
	minLag, _ := strconv.ParseInt(value(configMinCompactionLagMs), 10, 64)
	maxLag, _ := strconv.ParseInt(value(configMaxCompactionLagMs), 10, 64)
	if minLag > maxLag {
		return adminErrorf(kerr.InvalidConfig, "topic config %s (%d) is above %s (%d)",
			configMinCompactionLagMs, minLag, configMaxCompactionLagMs, maxLag)
	}
	if value(configRemoteStorageEnable) == "true" && policyCompacts(value(configCleanupPolicy)) {
		return adminErrorf(kerr.InvalidConfig, "topic config %s=true is refused for a compacted topic (%s=%s), as in Kafka",
			configRemoteStorageEnable, configCleanupPolicy, value(configCleanupPolicy))
	}
	return nil
}

// policyCompacts and policyDeletes read a stored cleanup.policy.
func policyCompacts(policy string) bool { return slices.Contains(splitList(policy), "compact") }
func policyDeletes(policy string) bool  { return slices.Contains(splitList(policy), "delete") }
