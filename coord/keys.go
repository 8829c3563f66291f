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
	dirIndex     = "index/"
	dirProducers = "producers/"
	keyPIDNext   = "pid/next"
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

func (k keys) leader(tp TP) string {
	return k.leaders(tp.Topic) + strconv.FormatInt(int64(tp.Partition), 10)
}

// partIndex is the prefix of one partition's index keys; the trailing slash keeps partition 1
// from matching partition 10.
func (k keys) partIndex(tp TP) string {
	return k.index(tp.Topic) + strconv.FormatInt(int64(tp.Partition), 10) + "/"
}

// indexEntry pads the base offset to 20 digits so that keys sort by offset.
func (k keys) indexEntry(tp TP, base int64) string {
	s := strconv.FormatInt(base, 10)
	return k.partIndex(tp) + strings.Repeat("0", max(0, 20-len(s))) + s
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
)

// parsedKey is a key taken apart; only the fields of its kind are set.
type parsedKey struct {
	kind keyKind
	name string // agent id or topic name
	tp   TP
	base int64
}

// parse takes a key under the prefix apart. Keys it does not understand are kindOther.
func (k keys) parse(key string) parsedKey {
	rest, ok := strings.CutPrefix(key, k.prefix)
	if !ok {
		return parsedKey{}
	}
	switch {
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
		parts := strings.Split(rest[len(dirIndex):], "/")
		tp, ok := parseTP(parts, 3)
		if !ok {
			break
		}
		base, err := strconv.ParseInt(parts[2], 10, 64)
		if err == nil && base >= 0 {
			return parsedKey{kind: kindIndex, tp: tp, base: base}
		}
	}
	return parsedKey{}
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
