package coord

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
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
	// records are the commit records (and legacy index keys) in etcd, by key, with how many of
	// their entries are live; a record with none is dead (deadRecords).
	records map[string]*recordRef
	pidNext int64 // pid/next: the first producer id not handed out yet
	sec     securityState
}

// leader is a partition's leader key: its holder, the key's create revision (the fencing epoch) and
// the client-facing leader epoch it carries.
type leader struct {
	agent string
	rev   int64
	epoch int32
}

// leaderValue is the value of a leader key. Keys of the legacy layout hold the agent id alone.
type leaderValue struct {
	Agent string `json:"agent"`
	Epoch int32  `json:"epoch"`
}

// parseLeader reads a leader key; a legacy one's client epoch is its create revision, when that
// fits an int32 (it did for every client of that layout that could follow leaders).
func parseLeader(kv *mvccpb.KeyValue) leader {
	l := leader{rev: kv.CreateRevision}
	var v leaderValue
	if bytes.HasPrefix(kv.Value, []byte("{")) && json.Unmarshal(kv.Value, &v) == nil {
		l.agent, l.epoch = v.Agent, v.Epoch
		return l
	}
	l.agent = string(kv.Value)
	if kv.CreateRevision <= math.MaxInt32 {
		l.epoch = int32(kv.CreateRevision)
	}
	return l
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
		records: map[string]*recordRef{},
		pidNext: FirstProducerID,
		sec:     newSecurityState(),
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
	p := newPartition()
	st.parts[tp] = p
	return p
}

// put applies one key's new value. It reports whether topics, agents or leaders changed.
func (st *state) put(kv *mvccpb.KeyValue) (changed bool) {
	k := st.keys.parse(string(kv.Key))
	switch k.kind {
	case kindTopic:
		var t Topic
		if !st.decode(kv, &t) {
			return false
		}
		t.Revision = kv.CreateRevision
		st.putTopic(t)
	case kindAgent:
		var a AgentInfo
		if !st.decode(kv, &a) {
			return false
		}
		st.agents[k.name] = a
	case kindLeader:
		st.leaders[k.tp] = parseLeader(kv)
	case kindPIDNext:
		if n, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil && n > st.pidNext {
			st.pidNext = n // it only grows; an older value seen late must not lower it
		}
		return false
	case kindUser, kindACL, kindQuota:
		st.putSecurity(k, kv)
		return false
	default:
		st.putIndex(k, kv)
		return false
	}
	return true
}

// putIndex applies a key of a partition's index or state.
func (st *state) putIndex(k parsedKey, kv *mvccpb.KeyValue) {
	switch k.kind {
	case kindCommit, kindIndex:
		if r, ok := st.decodeIndexKey(k, kv); ok {
			st.putRecord(string(kv.Key), r)
		}
	case kindSegment:
		var e IndexEntry
		if st.decode(kv, &e) && e.Segment != nil {
			if p := st.part(k.tp, true); p != nil {
				st.unref(p.putSegment(e, k.tp, st.log))
			}
		}
	case kindLogStart:
		if n, err := strconv.ParseInt(string(kv.Value), 10, 64); err == nil && n >= 0 {
			if p := st.part(k.tp, true); p != nil {
				st.unref(p.setStart(n))
			}
		}
	case kindEpoch:
		if n, err := strconv.ParseInt(string(kv.Value), 10, 32); err == nil {
			if p := st.part(k.tp, true); p != nil {
				p.epoch, p.epochRev = int32(n), kv.ModRevision
			}
		}
	case kindProducer:
		var ps ProducerState
		if st.decode(kv, &ps) {
			if p := st.part(k.tp, true); p != nil {
				if p.snapshots == nil {
					p.snapshots = map[int64]ProducerState{}
				}
				p.snapshots[ps.ID] = ps
			}
		}
	}
}

func (st *state) decode(kv *mvccpb.KeyValue, v any) bool {
	if err := json.Unmarshal(kv.Value, v); err != nil {
		st.log.Warn("ignoring undecodable key", "key", string(kv.Key), "error", err)
		return false
	}
	return true
}

// putRecord adds a commit record's entries to their partitions. A record none of whose entries is
// live (covered by a segment, below the log start, of a deleted topic) is dead at once.
func (st *state) putRecord(key string, r Record) {
	ref := st.records[key]
	if ref == nil {
		ref = &recordRef{key: key}
		st.records[key] = ref
	}
	for _, re := range r.Entries {
		p := st.part(re.TP, true)
		if p == nil {
			continue
		}
		te := tailEntry{IndexEntry: re.Entry, rec: ref, batches: re.Batches, time: r.Time}
		if p.addTail(te, re.TP, true, st.log) {
			ref.live++
		}
	}
}

// unref counts the entries that records lost.
func (st *state) unref(refs []*recordRef) {
	for _, r := range refs {
		r.live--
	}
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
			st.dropPartition(tp, p)
		}
	}
}

func (st *state) dropPartition(tp TP, p *partition) {
	st.unref(p.records())
	close(p.wait)
	delete(st.parts, tp)
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
			st.dropPartition(tp, p)
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
	case kindCommit, kindIndex:
		ref := st.records[key]
		if ref == nil {
			return false
		}
		if p := st.parts[k.tp]; k.kind == kindIndex && p != nil && p.trimLegacy(k.base, ref) {
			ref.live--
		}
		if ref.live > 0 {
			st.log.Error("a commit record with live entries was deleted", "key", key, "live", ref.live)
		}
		delete(st.records, key)
		return false
	case kindSegment:
		if p := st.parts[k.tp]; p != nil {
			p.deleteSegment(k.base)
		}
		return false
	case kindProducer:
		if p := st.parts[k.tp]; p != nil {
			delete(p.snapshots, k.base)
		}
		return false
	case kindEpoch:
		if p := st.parts[k.tp]; p != nil {
			p.epoch, p.epochRev = 0, 0
		}
		return false
	case kindUser, kindACL, kindQuota:
		st.delSecurity(k)
		return false
	default:
		return false
	}
	return true
}

// deadRecords lists the keys of the records none of whose entries is live, sorted.
func (st *state) deadRecords() []string {
	var out []string
	for key, r := range st.records {
		if r.live <= 0 {
			out = append(out, key)
		}
	}
	slices.Sort(out)
	return out
}

// loadAll fills a fresh state from every key under the prefix, read at one revision. Keys come in
// key order, which is not the order a partition's entries must be added in: topics go first (index
// keys count only for topics that exist), then what bounds the index (log starts, segments), then
// every uncompacted entry of every record, sorted by partition and offset.
func (st *state) loadAll(kvs []*mvccpb.KeyValue) {
	var rest, index []*mvccpb.KeyValue
	for _, kv := range kvs {
		switch st.keys.parse(string(kv.Key)).kind {
		case kindTopic:
			st.put(kv)
		case kindCommit, kindIndex:
			index = append(index, kv)
		default:
			rest = append(rest, kv)
		}
	}
	for _, kv := range rest {
		st.put(kv)
	}
	type loaded struct {
		tp  TP
		te  tailEntry
		rev int64 // the record's mod revision: of two entries at one offset, the first written wins
	}
	var all []loaded
	for _, kv := range index {
		k := st.keys.parse(string(kv.Key))
		r, ok := st.decodeIndexKey(k, kv)
		if !ok {
			continue
		}
		ref := &recordRef{key: string(kv.Key)}
		st.records[ref.key] = ref
		for _, re := range r.Entries {
			all = append(all, loaded{re.TP, tailEntry{IndexEntry: re.Entry, rec: ref, batches: re.Batches, time: r.Time}, kv.ModRevision})
		}
	}
	slices.SortFunc(all, func(a, b loaded) int {
		if c := tpCompare(a.tp, b.tp); c != 0 {
			return c
		}
		if c := cmpInt64(a.te.BaseOffset, b.te.BaseOffset); c != 0 {
			return c
		}
		return cmpInt64(a.rev, b.rev)
	})
	for _, l := range all {
		if p := st.part(l.tp, true); p != nil && p.addTail(l.te, l.tp, true, st.log) {
			l.te.rec.live++
		}
	}
}

// decodeIndexKey reads a commit record, or a legacy index key as a record of one entry.
func (st *state) decodeIndexKey(k parsedKey, kv *mvccpb.KeyValue) (Record, bool) {
	if k.kind == kindCommit {
		r, err := decodeRecord(kv.Value)
		if err != nil {
			st.log.Error("ignoring undecodable commit record", "key", string(kv.Key), "error", err)
			return Record{}, false
		}
		return r, true
	}
	var e IndexEntry
	if !st.decode(kv, &e) {
		return Record{}, false
	}
	e.Segment = nil
	return Record{Entries: []RecordEntry{{TP: k.tp, Entry: e}}}, true
}

func tpCompare(a, b TP) int {
	if c := bytes.Compare(a.Topic[:], b.Topic[:]); c != 0 {
		return c
	}
	return cmpInt64(int64(a.Partition), int64(b.Partition))
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
