package checker

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// Kind is a kind of anomaly.
type Kind string

const (
	// Lost: an acknowledged value absent from the log, although reads (or the log end offset) went
	// past the offset it was acknowledged at.
	Lost Kind = "lost"
	// Unseen: an acknowledged value that no read returned, and no read went past its offset.
	Unseen Kind = "unseen"
	// Duplicate: one value at two or more offsets.
	Duplicate Kind = "duplicate"
	// InconsistentOffset: one offset read with two or more values.
	InconsistentOffset Kind = "inconsistent-offset"
	// WrongOffset: a value acknowledged at one offset and read at another.
	WrongOffset Kind = "wrong-offset"
	// Nonmonotonic: a consumer session read an offset at or below one it had already read.
	Nonmonotonic Kind = "nonmonotonic"
	// Skip: a consumer session jumped over offsets of a partition.
	Skip Kind = "skip"
	// Gap: offsets of a partition that no read returned, below the highest one read or the log end.
	Gap Kind = "gap"
	// FailedRead: a read returned a value whose send definitely failed.
	FailedRead Kind = "failed-read"
	// Phantom: a read returned a value nobody sent.
	Phantom Kind = "phantom"
	// CommitBackwards: a group's committed offset of a partition went below one acknowledged
	// earlier (by a later commit, or as read back).
	CommitBackwards Kind = "commit-backwards"
)

// Kinds lists every kind, in the order of a report.
var Kinds = []Kind{Lost, Unseen, Duplicate, InconsistentOffset, WrongOffset, Nonmonotonic, Skip, Gap,
	FailedRead, Phantom, CommitBackwards, AbortedRead, UncommittedRead, LostCommitted, PartialTxn, OffsetWithoutTxn, Unprocessed}

// Anomaly is one thing that should not have happened.
type Anomaly struct {
	Kind      Kind   `json:"kind"`
	Topic     string `json:"topic,omitempty"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Value     string `json:"value,omitempty"`
	Proc      string `json:"proc,omitempty"`
	Session   int    `json:"session,omitempty"`
	Group     string `json:"group,omitempty"`
	Detail    string `json:"detail"`
}

func (a Anomaly) String() string {
	return fmt.Sprintf("%s %s/%d@%d %s", a.Kind, a.Topic, a.Partition, a.Offset, a.Detail)
}

// Result is what the checker found.
type Result struct {
	Sends, Acked, Failed, Indeterminate int
	Reads                               int // records returned by polls, counting repeats
	Commits                             int // acknowledged group commits
	Partitions                          int // partitions sent to or read from
	Txn                                 TxnResult
	Anomalies                           []Anomaly
}

// Count is the number of anomalies of kind k.
func (r Result) Count(k Kind) int {
	n := 0
	for _, a := range r.Anomalies {
		if a.Kind == k {
			n++
		}
	}
	return n
}

// OK reports whether the history has no anomaly.
func (r Result) OK() bool { return len(r.Anomalies) == 0 }

type loc struct {
	tp     history.TP
	offset int64
}

// state is what the checker gathers from the history before judging it.
type state struct {
	sends    map[string]history.Event      // by value
	values   map[loc][]string              // distinct values read at each offset
	at       map[string][]loc              // distinct offsets each value was read at
	maxRead  map[history.TP]int64          // highest offset read
	logEnd   map[history.TP]int64          // log end offsets at the end
	read     map[history.TP]map[int64]bool // offsets read
	sessions map[sessionKey]int64          // last offset read in a consumer session
	res      Result
}

type sessionKey struct {
	proc    string
	session int
	tp      history.TP
}

// Check judges a history.
func Check(events []history.Event) Result {
	st := &state{sends: map[string]history.Event{}, values: map[loc][]string{}, at: map[string][]loc{},
		maxRead: map[history.TP]int64{}, logEnd: map[history.TP]int64{}, read: map[history.TP]map[int64]bool{},
		sessions: map[sessionKey]int64{}}
	for _, e := range events {
		switch e.Type {
		case history.Send:
			st.addSend(e)
		case history.End:
			st.logEnd[e.TP()] = e.Offset
		}
	}
	polls := filter(events, history.Poll)
	// A session's polls never overlap, so their start times order them, whatever order they were
	// recorded in.
	sort.SliceStable(polls, func(i, j int) bool { return polls[i].Start.Before(polls[j].Start) })
	for _, e := range polls {
		st.addPoll(e)
	}
	st.checkSends()
	st.checkReads()
	st.checkGaps()
	st.checkCommits(events)
	st.checkTxns(events)
	st.res.Partitions = st.partitions()
	slices.SortStableFunc(st.res.Anomalies, func(a, b Anomaly) int {
		return cmp.Or(cmp.Compare(slices.Index(Kinds, a.Kind), slices.Index(Kinds, b.Kind)),
			cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return st.res
}

func filter(events []history.Event, t history.Type) []history.Event {
	var out []history.Event
	for _, e := range events {
		if e.Type == t {
			out = append(out, e)
		}
	}
	return out
}

func (st *state) anomaly(a Anomaly) { st.res.Anomalies = append(st.res.Anomalies, a) }

func (st *state) addSend(e history.Event) {
	st.res.Sends++
	switch e.Outcome {
	case history.OK:
		st.res.Acked++
	case history.Failed:
		st.res.Failed++
	default:
		st.res.Indeterminate++
	}
	// A value is sent once; should a history hold it twice, an acknowledgement is what counts.
	if prev, ok := st.sends[e.Value]; !ok || prev.Outcome != history.OK {
		st.sends[e.Value] = e
	}
}

func (st *state) addPoll(e history.Event) {
	for _, r := range e.Reads {
		st.res.Reads++
		tp, l := r.TP(), loc{r.TP(), r.Offset}
		if !slices.Contains(st.values[l], r.Value) {
			st.values[l] = append(st.values[l], r.Value)
		}
		if !slices.Contains(st.at[r.Value], l) {
			st.at[r.Value] = append(st.at[r.Value], l)
		}
		if m, ok := st.maxRead[tp]; !ok || r.Offset > m {
			st.maxRead[tp] = r.Offset
		}
		if st.read[tp] == nil {
			st.read[tp] = map[int64]bool{}
		}
		st.read[tp][r.Offset] = true
		st.checkSession(e, r)
	}
}

// checkSession checks that a consumer session reads each partition's offsets one after another.
func (st *state) checkSession(e history.Event, r history.Read) {
	k := sessionKey{e.Proc, e.Session, r.TP()}
	last, seen := st.sessions[k]
	st.sessions[k] = r.Offset
	a := Anomaly{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: r.Value, Proc: e.Proc, Session: e.Session}
	switch {
	case !seen:
	case r.Offset <= last:
		a.Kind, a.Detail = Nonmonotonic, fmt.Sprintf("%s session %d read offset %d after %d", e.Proc, e.Session, r.Offset, last)
		st.anomaly(a)
	case r.Offset > last+1:
		a.Kind, a.Detail = Skip, fmt.Sprintf("%s session %d read offset %d after %d, skipping %d", e.Proc, e.Session, r.Offset, last, r.Offset-last-1)
		st.anomaly(a)
	}
}

// checkSends looks for each acknowledged value where it was acknowledged.
func (st *state) checkSends() {
	for _, v := range slices.Sorted(maps.Keys(st.sends)) {
		s := st.sends[v]
		if s.Outcome != history.OK {
			continue
		}
		want := loc{s.TP(), s.Offset}
		at := st.at[v]
		a := Anomaly{Topic: s.Topic, Partition: s.Partition, Offset: s.Offset, Value: v, Proc: s.Proc}
		for _, l := range at {
			if l != want {
				a.Kind, a.Detail = WrongOffset, fmt.Sprintf("acknowledged at %s@%d, read at %s@%d", want.tp, want.offset, l.tp, l.offset)
				st.anomaly(a)
			}
		}
		if len(at) > 0 {
			continue
		}
		maxRead, read := st.maxRead[want.tp]
		end, ended := st.logEnd[want.tp]
		switch {
		case read && maxRead > want.offset:
			a.Kind, a.Detail = Lost, fmt.Sprintf("acknowledged at offset %d, never read; reads reached offset %d", want.offset, maxRead)
		case ended && end > want.offset:
			a.Kind, a.Detail = Lost, fmt.Sprintf("acknowledged at offset %d, never read; the log ends at %d", want.offset, end)
		default:
			a.Kind, a.Detail = Unseen, fmt.Sprintf("acknowledged at offset %d, never read", want.offset)
		}
		st.anomaly(a)
	}
}

// checkReads looks at what was read: one value per offset, one offset per value, and nothing that
// was not (successfully) sent.
func (st *state) checkReads() {
	locs := slices.SortedFunc(maps.Keys(st.values), func(a, b loc) int {
		return cmp.Or(cmp.Compare(a.tp.Topic, b.tp.Topic), cmp.Compare(a.tp.Partition, b.tp.Partition), cmp.Compare(a.offset, b.offset))
	})
	for _, l := range locs {
		vs := st.values[l]
		if len(vs) > 1 {
			st.anomaly(Anomaly{Kind: InconsistentOffset, Topic: l.tp.Topic, Partition: l.tp.Partition, Offset: l.offset,
				Detail: fmt.Sprintf("offset read with %d values: %q", len(vs), vs)})
		}
	}
	for _, v := range slices.Sorted(maps.Keys(st.at)) {
		at := st.at[v]
		first := at[0]
		a := Anomaly{Topic: first.tp.Topic, Partition: first.tp.Partition, Offset: first.offset, Value: v}
		if len(at) > 1 {
			a.Kind, a.Detail = Duplicate, fmt.Sprintf("value read at %d offsets: %v", len(at), locStrings(at))
			st.anomaly(a)
		}
		s, sent := st.sends[v]
		switch {
		case !sent:
			a.Kind, a.Detail = Phantom, "read a value nobody sent"
			st.anomaly(a)
		case s.Outcome == history.Failed:
			a.Kind, a.Detail = FailedRead, fmt.Sprintf("read a value whose send failed: %s", s.Err)
			a.Proc = s.Proc
			st.anomaly(a)
		}
	}
}

func locStrings(ls []loc) []string {
	var out []string
	for _, l := range ls {
		out = append(out, fmt.Sprintf("%s@%d", l.tp, l.offset))
	}
	return out
}

// checkGaps reports the offsets of each partition that no read returned, below the highest read or
// the log end offset: a log's offsets are dense.
func (st *state) checkGaps() {
	tps := map[history.TP]bool{}
	for tp := range st.maxRead {
		tps[tp] = true
	}
	for tp := range st.logEnd {
		tps[tp] = true
	}
	for _, tp := range sortedTPs(tps) {
		top := int64(-1)
		if m, ok := st.maxRead[tp]; ok {
			top = m
		}
		if end, ok := st.logEnd[tp]; ok {
			top = max(top, end-1)
		}
		read := st.read[tp]
		for o := int64(0); o <= top; o++ {
			if read[o] {
				continue
			}
			from := o
			for o+1 <= top && !read[o+1] {
				o++
			}
			st.anomaly(Anomaly{Kind: Gap, Topic: tp.Topic, Partition: tp.Partition, Offset: from,
				Detail: fmt.Sprintf("offsets %d to %d (%d) never read; the partition was read to %d, its log ends at %d",
					from, o, o-from+1, st.maxReadOr(tp), st.logEndOr(tp))})
		}
	}
}

func (st *state) maxReadOr(tp history.TP) int64 {
	if m, ok := st.maxRead[tp]; ok {
		return m
	}
	return -1
}

func (st *state) logEndOr(tp history.TP) int64 {
	if e, ok := st.logEnd[tp]; ok {
		return e
	}
	return -1
}

func sortedTPs(set map[history.TP]bool) []history.TP {
	return slices.SortedFunc(maps.Keys(set), func(a, b history.TP) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
}

func (st *state) partitions() int {
	tps := map[history.TP]bool{}
	for _, s := range st.sends {
		tps[s.TP()] = true
	}
	for tp := range st.maxRead {
		tps[tp] = true
	}
	return len(tps)
}
