package coord

import (
	"encoding/json"
	"sort"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/mvccpb"
)

// state is the cache's view of the keys under the prefix at one revision.
type state struct {
	keys    keys
	log     hclog.Logger
	topics  map[string]Topic
	byID    map[TopicID]string
	agents  map[string]AgentInfo
	leaders map[TP]leader
	parts   map[TP]*partition
	pidNext int64 // pid/next: the first producer id not handed out yet
}

type leader struct {
	agent string
	epoch int64
}

func newState(k keys, log hclog.Logger) *state {
	return &state{
		keys:    k,
		log:     log,
		topics:  map[string]Topic{},
		byID:    map[TopicID]string{},
		agents:  map[string]AgentInfo{},
		leaders: map[TP]leader{},
		parts:   map[TP]*partition{},
		pidNext: FirstProducerID,
	}
}

// part returns tp's index, creating it if asked and tp is a partition of an existing topic.
func (st *state) part(tp TP, create bool) *partition {
	if p := st.parts[tp]; p != nil || !create {
		return p
	}
	name, ok := st.byID[tp.Topic]
	if !ok || tp.Partition < 0 || tp.Partition >= st.topics[name].Partitions {
		return nil
	}
	p := &partition{wait: make(chan struct{})}
	st.parts[tp] = p
	return p
}

// put applies one key's new value. It reports whether topics, agents or leaders changed.
func (st *state) put(kv *mvccpb.KeyValue) (changed bool) {
	k := st.keys.parse(string(kv.Key))
	switch k.kind {
	case kindTopic:
		var t Topic
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			st.log.Warn("ignoring undecodable topic", "key", string(kv.Key), "error", err)
			return false
		}
		st.putTopic(t)
	case kindAgent:
		var a AgentInfo
		if err := json.Unmarshal(kv.Value, &a); err != nil {
			st.log.Warn("ignoring undecodable agent", "key", string(kv.Key), "error", err)
			return false
		}
		st.agents[k.name] = a
	case kindLeader:
		st.leaders[k.tp] = leader{agent: string(kv.Value), epoch: kv.CreateRevision}
	case kindPIDNext:
		if n, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil && n > st.pidNext {
			st.pidNext = n // it only grows; an older value seen late must not lower it
		}
		return false
	case kindIndex:
		var e IndexEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			st.log.Warn("ignoring undecodable index entry", "key", string(kv.Key), "error", err)
			return false
		}
		if p := st.part(k.tp, true); p != nil {
			p.put(e, k.tp, true, st.log)
		}
		return false
	default:
		return false
	}
	return true
}

// putTopic stores t; a topic re-created under the same name or shrunk loses the old partitions.
func (st *state) putTopic(t Topic) {
	if old, ok := st.topics[t.Name]; ok && old.ID != t.ID {
		st.dropTopic(t.Name)
	}
	st.topics[t.Name] = t
	st.byID[t.ID] = t.Name
	for tp, p := range st.parts {
		if tp.Topic == t.ID && tp.Partition >= t.Partitions {
			close(p.wait)
			delete(st.parts, tp)
		}
	}
}

// dropTopic forgets a topic, its index and its leaders, and wakes its waiters.
func (st *state) dropTopic(name string) {
	t, ok := st.topics[name]
	if !ok {
		return
	}
	delete(st.topics, name)
	delete(st.byID, t.ID)
	for tp, p := range st.parts {
		if tp.Topic == t.ID {
			close(p.wait)
			delete(st.parts, tp)
		}
	}
	for tp := range st.leaders {
		if tp.Topic == t.ID {
			delete(st.leaders, tp)
		}
	}
}

// del applies one key's deletion. It reports whether topics, agents or leaders changed.
func (st *state) del(key string) (changed bool) {
	k := st.keys.parse(key)
	switch k.kind {
	case kindTopic:
		st.dropTopic(k.name)
	case kindAgent:
		delete(st.agents, k.name)
	case kindLeader:
		delete(st.leaders, k.tp)
	case kindIndex:
		if p := st.parts[k.tp]; p != nil {
			p.remove(k.base)
		}
		return false
	default:
		return false
	}
	return true
}

// partition is one partition's index: entries sorted by base offset, normally contiguous.
type partition struct {
	entries []IndexEntry
	hwm     int64         // next offset; survives retention dropping entries
	wait    chan struct{} // closed (and replaced) when hwm advances or the partition goes away
}

// put adds e at the high watermark. From etcd (replace), e may also take the place of the run
// of entries it covers exactly: the same entry seen twice, or a compaction's merged entry.
// Anything else would break contiguity and is ignored.
func (p *partition) put(e IndexEntry, tp TP, replace bool, log hclog.Logger) {
	switch {
	case e.LastOffset < e.BaseOffset:
		log.Debug("ignoring index entry with inverted offsets", "tp", tp, "base", e.BaseOffset, "last", e.LastOffset)
	case e.BaseOffset == p.hwm:
		p.entries = append(p.entries, e)
		p.hwm = e.LastOffset + 1
		close(p.wait)
		p.wait = make(chan struct{})
	case e.BaseOffset < p.hwm && replace && p.replace(e):
	case e.BaseOffset < p.hwm && !replace:
		// Already there: a leader's Apply after the watch brought its own entry.
	default:
		log.Debug("ignoring non-contiguous index entry", "tp", tp, "base", e.BaseOffset, "last", e.LastOffset, "hwm", p.hwm)
	}
}

// replace swaps the entries whose base lies in [e.BaseOffset, e.LastOffset] for e, provided the
// first starts at e.BaseOffset and the entry after the run starts right after e.
func (p *partition) replace(e IndexEntry) bool {
	i := sort.Search(len(p.entries), func(i int) bool { return p.entries[i].BaseOffset >= e.BaseOffset })
	if i == len(p.entries) || p.entries[i].BaseOffset != e.BaseOffset {
		return false
	}
	j := sort.Search(len(p.entries), func(j int) bool { return p.entries[j].BaseOffset > e.LastOffset })
	if p.entries[j-1].LastOffset > e.LastOffset {
		return false
	}
	if j < len(p.entries) && p.entries[j].BaseOffset != e.LastOffset+1 {
		return false
	}
	if j == len(p.entries) && e.LastOffset+1 != p.hwm {
		return false
	}
	p.entries = append(p.entries[:i], append([]IndexEntry{e}, p.entries[j:]...)...)
	return true
}

// remove drops the entry at base (retention drops a prefix; compaction the tail of a run).
func (p *partition) remove(base int64) {
	i := sort.Search(len(p.entries), func(i int) bool { return p.entries[i].BaseOffset >= base })
	switch {
	case i == len(p.entries) || p.entries[i].BaseOffset != base:
	case i == 0: // retention: O(1) for each key of a range delete
		p.entries = p.entries[1:]
	default:
		p.entries = append(p.entries[:i], p.entries[i+1:]...)
	}
}

// logStart is the first offset held; the high watermark when nothing is.
func (p *partition) logStart() int64 {
	if len(p.entries) == 0 {
		return p.hwm
	}
	return p.entries[0].BaseOffset
}

// read returns copies of the entries from the one containing from, until their bytes reach
// maxBytes (at least one) or the run of contiguous entries ends.
func (p *partition) read(from, maxBytes int64) []IndexEntry {
	i := sort.Search(len(p.entries), func(i int) bool { return p.entries[i].LastOffset >= from })
	if i == len(p.entries) || p.entries[i].BaseOffset > from {
		return nil
	}
	var out []IndexEntry
	var sum int64
	for ; i < len(p.entries) && (len(out) == 0 || sum < maxBytes); i++ {
		if len(out) > 0 && p.entries[i].BaseOffset != out[len(out)-1].LastOffset+1 {
			break
		}
		out = append(out, p.entries[i])
		sum += p.entries[i].Bytes
	}
	return out
}
