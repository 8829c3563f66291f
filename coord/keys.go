package coord

import (
	"strconv"
	"strings"
)

// keys builds and parses the etcd keys of docs/INTERNALS.md under one prefix.
type keys struct{ prefix string }

const (
	dirAgents    = "agents/"
	dirTopics    = "topics/"
	dirLeaders   = "leaders/"
	dirIndex     = "index/" // the legacy layout: one key per partition per flush
	dirProducers = "producers/"
	dirCommits   = "commits/"
	dirSegments  = "segs/"
	dirLogStart  = "logstart/"
	dirEpochs    = "epochs/"
	keyPIDNext   = "pid/next"
	keyGCLeader  = "gc/leader"
	keySecret    = "cluster/secret"
)

func (k keys) agents() string            { return k.prefix + dirAgents }
func (k keys) agent(id string) string    { return k.prefix + dirAgents + id }
func (k keys) topics() string            { return k.prefix + dirTopics }
func (k keys) topic(name string) string  { return k.prefix + dirTopics + name }
func (k keys) pidNext() string           { return k.prefix + keyPIDNext }
func (k keys) secret() string            { return k.prefix + keySecret }
func (k keys) leaders(id TopicID) string { return k.prefix + dirLeaders + id.String() + "/" }
func (k keys) index(id TopicID) string   { return k.prefix + dirIndex + id.String() + "/" }

func (k keys) producers(id TopicID) string { return k.prefix + dirProducers + id.String() + "/" }
func (k keys) segments(id TopicID) string  { return k.prefix + dirSegments + id.String() + "/" }
func (k keys) logStarts(id TopicID) string { return k.prefix + dirLogStart + id.String() + "/" }
func (k keys) epochs(id TopicID) string    { return k.prefix + dirEpochs + id.String() + "/" }
func (k keys) commits() string             { return k.prefix + dirCommits }
func (k keys) commit(id string) string     { return k.prefix + dirCommits + id }
func (k keys) gcLeader() string            { return k.prefix + keyGCLeader }

func (k keys) partSegments(tp TP) string {
	return k.segments(tp.Topic) + strconv.FormatInt(int64(tp.Partition), 10) + "/"
}

// segment pads the base offset to 20 digits so that keys sort by offset.
func (k keys) segment(tp TP, base int64) string { return k.partSegments(tp) + pad20(base) }

func (k keys) logStart(tp TP) string {
	return k.logStarts(tp.Topic) + strconv.FormatInt(int64(tp.Partition), 10)
}

func (k keys) epoch(tp TP) string {
	return k.epochs(tp.Topic) + strconv.FormatInt(int64(tp.Partition), 10)
}

func (k keys) leader(tp TP) string {
	return k.leaders(tp.Topic) + strconv.FormatInt(int64(tp.Partition), 10)
}

// partIndex is the prefix of one partition's index keys; the trailing slash keeps partition 1
// from matching partition 10.
func (k keys) partIndex(tp TP) string {
	return k.index(tp.Topic) + strconv.FormatInt(int64(tp.Partition), 10) + "/"
}

// indexEntry pads the base offset to 20 digits so that keys sort by offset.
func (k keys) indexEntry(tp TP, base int64) string { return k.partIndex(tp) + pad20(base) }

func pad20(n int64) string {
	s := strconv.FormatInt(n, 10)
	return strings.Repeat("0", max(0, 20-len(s))) + s
}

func (k keys) partProducers(tp TP) string {
	return k.producers(tp.Topic) + strconv.FormatInt(int64(tp.Partition), 10) + "/"
}

func (k keys) producer(tp TP, pid int64) string {
	return k.partProducers(tp) + strconv.FormatInt(pid, 10)
}

// keyKind says which directory a key belongs to.
type keyKind int

const (
	kindOther keyKind = iota
	kindAgent
	kindTopic
	kindLeader
	kindIndex
	kindCommit
	kindSegment
	kindLogStart
	kindEpoch
	kindProducer
	kindPIDNext
	kindUser  // users/<user>/<mechanism>
	kindACL   // acls/<id>
	kindQuota // quotas/<entity>
)

// parsedKey is a key taken apart; only the fields of its kind are set.
type parsedKey struct {
	kind keyKind
	name string // agent id, topic name or commit record id
	tp   TP
	base int64 // index entry or segment base offset; producer id

	mech  string      // a user key's SCRAM mechanism
	quota QuotaEntity // a quota key's entity
}

// parse takes a key under the prefix apart. Keys it does not understand are kindOther.
func (k keys) parse(key string) parsedKey {
	rest, ok := strings.CutPrefix(key, k.prefix)
	if !ok {
		return parsedKey{}
	}
	switch {
	case rest == keyPIDNext:
		return parsedKey{kind: kindPIDNext}
	case strings.HasPrefix(rest, dirAgents):
		return parsedKey{kind: kindAgent, name: rest[len(dirAgents):]}
	case strings.HasPrefix(rest, dirTopics):
		return parsedKey{kind: kindTopic, name: rest[len(dirTopics):]}
	case strings.HasPrefix(rest, dirLeaders):
		parts := strings.Split(rest[len(dirLeaders):], "/")
		if tp, ok := parseTP(parts, 2); ok {
			return parsedKey{kind: kindLeader, tp: tp}
		}
	case strings.HasPrefix(rest, dirIndex):
		return parseNumbered(kindIndex, rest[len(dirIndex):])
	case strings.HasPrefix(rest, dirSegments):
		return parseNumbered(kindSegment, rest[len(dirSegments):])
	case strings.HasPrefix(rest, dirProducers):
		return parseNumbered(kindProducer, rest[len(dirProducers):])
	case strings.HasPrefix(rest, dirCommits):
		if id := rest[len(dirCommits):]; id != "" && !strings.Contains(id, "/") {
			return parsedKey{kind: kindCommit, name: id}
		}
	case strings.HasPrefix(rest, dirLogStart):
		if tp, ok := parseTP(strings.Split(rest[len(dirLogStart):], "/"), 2); ok {
			return parsedKey{kind: kindLogStart, tp: tp}
		}
	case strings.HasPrefix(rest, dirEpochs):
		if tp, ok := parseTP(strings.Split(rest[len(dirEpochs):], "/"), 2); ok {
			return parsedKey{kind: kindEpoch, tp: tp}
		}
	default:
		return parseSecurityKey(rest)
	}
	return parsedKey{}
}

// parseNumbered reads "<topic id>/<partition>/<non-negative number>".
func parseNumbered(kind keyKind, rest string) parsedKey {
	parts := strings.Split(rest, "/")
	tp, ok := parseTP(parts, 3)
	if !ok {
		return parsedKey{}
	}
	n, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || n < 0 {
		return parsedKey{}
	}
	return parsedKey{kind: kind, tp: tp, base: n}
}

// parseTP reads "<topic id>/<partition>" from the first two of exactly n parts.
func parseTP(parts []string, n int) (TP, bool) {
	if len(parts) != n {
		return TP{}, false
	}
	id, err := ParseTopicID(parts[0])
	if err != nil {
		return TP{}, false
	}
	p, err := strconv.ParseInt(parts[1], 10, 32)
	if err != nil || p < 0 {
		return TP{}, false
	}
	return TP{Topic: id, Partition: int32(p)}, true
}
