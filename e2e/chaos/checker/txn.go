package checker

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// Kinds of the transactional checks, after Jepsen's checks of Kafka transactions. A transaction whose
// EndTxn commit ended in an error is indeterminate: committed or aborted are both fine, but all or
// nothing of it may be visible.
const (
	// AbortedRead: a read_committed consumer read a record of a transaction that aborted.
	AbortedRead Kind = "aborted-read"
	// UncommittedRead: a read_committed consumer read a record of a transaction before its commit was
	// even asked for (the poll ended before EndTxn was sent).
	UncommittedRead Kind = "uncommitted-read"
	// LostCommitted: a record of a committed transaction that the final read_committed drain, reading
	// every transactional partition to its end, never read.
	LostCommitted Kind = "lost-committed"
	// PartialTxn: an indeterminate transaction of which some records are visible and others not (in
	// the final drain; or seen by a read_committed consumer, then gone from the drain).
	PartialTxn Kind = "partial-txn"
	// OffsetWithoutTxn: a consumer group's committed offset, read back, that no committed (or
	// indeterminate) transaction committed with TxnOffsetCommit: offsets moved without their
	// transaction.
	OffsetWithoutTxn Kind = "offset-without-txn"
	// Unprocessed: an input record below its group's final committed offset whose transformed record
	// no read_committed read of the output holds: the offsets moved past it, its transaction's write
	// did not come with them.
	Unprocessed Kind = "unprocessed"
)

// TxnResult is what the transactional checks counted.
type TxnResult struct {
	Txns, Committed, Aborted, Indeterminate int
	Reads                                   int // records returned to read_committed polls, counting repeats
	Drained                                 bool
}

type txnState struct {
	txns     map[string]history.Event // by Txn
	ofValue  map[string]string        // value -> txn
	written  map[string]history.Read  // value -> its write
	at       map[string][]loc         // distinct offsets each value was read at
	drained  map[string]bool          // values the final drain read
	live     map[string]bool          // values other read_committed reads returned
	inputs   map[history.TP][]history.Read
	reported map[string]bool // "kind txn proc": one anomaly of a kind per transaction and reader
}

// checkTxns runs the transactional checks over the Txn, ReadCommitted, TxnDrained and Committed
// events; they judge only the transactional topics, which no Send or Poll names.
func (st *state) checkTxns(events []history.Event) {
	ts := &txnState{txns: map[string]history.Event{}, ofValue: map[string]string{}, written: map[string]history.Read{},
		at: map[string][]loc{}, drained: map[string]bool{}, live: map[string]bool{}, inputs: map[history.TP][]history.Read{},
		reported: map[string]bool{}}
	r := &st.res.Txn
	for _, e := range events {
		switch e.Type {
		case history.Txn:
			ts.txns[e.Txn] = e
			r.Txns++
			switch e.Outcome {
			case history.OK:
				r.Committed++
			case history.Failed:
				r.Aborted++
			default:
				r.Indeterminate++
			}
			for _, w := range e.Writes {
				ts.ofValue[w.Value] = e.Txn
				ts.written[w.Value] = w
			}
		case history.TxnDrained:
			r.Drained = true
		}
	}
	polls := filter(events, history.ReadCommitted)
	sort.SliceStable(polls, func(i, j int) bool { return polls[i].Start.Before(polls[j].Start) })
	for _, e := range polls {
		for _, rd := range e.Reads {
			r.Reads++
			st.txnRead(ts, e, rd)
		}
	}
	st.checkTxnValues(ts)
	if r.Drained {
		st.checkTxnVisibility(ts)
	}
	st.checkTxnOffsets(ts, events)
}

func (st *state) txnAnomaly(ts *txnState, key string, a Anomaly) {
	if ts.reported[key] {
		return
	}
	ts.reported[key] = true
	st.anomaly(a)
}

// txnRead judges one record a read_committed poll returned.
func (st *state) txnRead(ts *txnState, e history.Event, rd history.Read) {
	l := loc{rd.TP(), rd.Offset}
	if !slices.Contains(ts.at[rd.Value], l) {
		ts.at[rd.Value] = append(ts.at[rd.Value], l)
	}
	if e.Proc == history.TxnDrainProc {
		ts.drained[rd.Value] = true
		ts.inputs[rd.TP()] = append(ts.inputs[rd.TP()], rd)
	} else {
		ts.live[rd.Value] = true
	}
	a := Anomaly{Topic: rd.Topic, Partition: rd.Partition, Offset: rd.Offset, Value: rd.Value, Proc: e.Proc, Session: e.Session}
	id, ok := ts.ofValue[rd.Value]
	if !ok {
		a.Kind, a.Detail = Phantom, "read_committed read a value no transaction wrote"
		st.anomaly(a)
		return
	}
	tx := ts.txns[id]
	switch {
	case tx.Outcome == history.Failed:
		when := "after"
		if tx.Decided.IsZero() || e.End.Before(tx.Decided) {
			when = "before"
		}
		a.Kind, a.Detail = AbortedRead, fmt.Sprintf("%s read_committed read a record of transaction %s, which aborted (%s%s); the poll ended at %s, %s its EndTxn was sent (%s)",
			e.Proc, id, tx.Detail, errSuffix(tx.Err), e.End.Format("15:04:05.000"), when, fmtTime(tx.Decided))
		st.txnAnomaly(ts, string(AbortedRead)+" "+id+" "+e.Proc, a)
	case tx.Decided.IsZero() || e.End.Before(tx.Decided):
		a.Kind, a.Detail = UncommittedRead, fmt.Sprintf("%s read_committed poll ended at %s, before transaction %s asked to commit (%s)",
			e.Proc, e.End.Format("15:04:05.000"), id, fmtTime(tx.Decided))
		st.txnAnomaly(ts, string(UncommittedRead)+" "+id+" "+e.Proc, a)
	}
}

func errSuffix(err string) string {
	if err == "" {
		return ""
	}
	return ": " + err
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format("15:04:05.000")
}

// checkTxnValues checks what was read of each transactional value: one offset, the one acknowledged.
func (st *state) checkTxnValues(ts *txnState) {
	for _, v := range slices.Sorted(maps.Keys(ts.at)) {
		at := ts.at[v]
		first := at[0]
		a := Anomaly{Topic: first.tp.Topic, Partition: first.tp.Partition, Offset: first.offset, Value: v}
		if len(at) > 1 {
			a.Kind, a.Detail = Duplicate, fmt.Sprintf("transactional value read at %d offsets: %v", len(at), locStrings(at))
			st.anomaly(a)
		}
		w, ok := ts.written[v]
		if !ok || w.Offset < 0 {
			continue
		}
		for _, l := range at {
			if l.tp != w.TP() || l.offset != w.Offset {
				a.Kind, a.Detail = WrongOffset, fmt.Sprintf("acknowledged at %s@%d, read at %s@%d", w.TP(), w.Offset, l.tp, l.offset)
				st.anomaly(a)
			}
		}
	}
}

// checkTxnVisibility checks, against the final drain, that every committed transaction is visible
// whole and every indeterminate one whole or not at all.
func (st *state) checkTxnVisibility(ts *txnState) {
	for _, id := range slices.Sorted(maps.Keys(ts.txns)) {
		tx := ts.txns[id]
		if tx.Outcome == history.Failed || len(tx.Writes) == 0 {
			continue
		}
		var seen, missing, liveOnly []string
		for _, w := range tx.Writes {
			switch {
			case ts.drained[w.Value]:
				seen = append(seen, w.Value)
			case ts.live[w.Value]:
				liveOnly = append(liveOnly, w.Value)
				missing = append(missing, w.Value)
			default:
				missing = append(missing, w.Value)
			}
		}
		if len(missing) == 0 {
			continue
		}
		w := tx.Writes[slices.IndexFunc(tx.Writes, func(w history.Read) bool { return w.Value == missing[0] })]
		a := Anomaly{Topic: w.Topic, Partition: w.Partition, Offset: w.Offset, Value: w.Value, Proc: tx.Proc}
		switch {
		case tx.Outcome == history.OK:
			a.Kind, a.Detail = LostCommitted, fmt.Sprintf("transaction %s committed; the final read_committed drain lacks %d of its %d records: %s",
				id, len(missing), len(tx.Writes), strings.Join(missing, " "))
		case len(seen) > 0:
			a.Kind, a.Detail = PartialTxn, fmt.Sprintf("indeterminate transaction %s: the final drain has %d of its %d records, lacks %s",
				id, len(seen), len(tx.Writes), strings.Join(missing, " "))
		case len(liveOnly) > 0:
			a.Kind, a.Detail = PartialTxn, fmt.Sprintf("indeterminate transaction %s: %d of its records were read by read_committed consumers, none by the final drain: %s",
				id, len(liveOnly), strings.Join(liveOnly, " "))
		default:
			continue // indeterminate, and aborted as far as anyone saw
		}
		st.anomaly(a)
	}
}

// checkTxnOffsets checks the offsets consume-transform-produce transactions committed: a group's
// committed offset, as read back, is one a committed (or indeterminate) transaction committed; and
// every input record below the group's last committed offset has its transformed record in the
// output.
func (st *state) checkTxnOffsets(ts *txnState, events []history.Event) {
	type target struct {
		committed []string // transactions that committed (or may have) this offset
		aborted   []string
	}
	targets := map[groupTP]map[int64]*target{}
	groups := map[string]bool{}
	for _, id := range slices.Sorted(maps.Keys(ts.txns)) {
		tx := ts.txns[id]
		if tx.Group == "" {
			continue
		}
		groups[tx.Group] = true
		for _, o := range tx.TxnOffsets {
			k := groupTP{tx.Group, o.TP()}
			if targets[k] == nil {
				targets[k] = map[int64]*target{}
			}
			t := targets[k][o.Offset]
			if t == nil {
				t = &target{}
				targets[k][o.Offset] = t
			}
			if tx.Outcome == history.Failed {
				t.aborted = append(t.aborted, id)
			} else {
				t.committed = append(t.committed, id)
			}
		}
	}
	final := map[groupTP]history.Event{} // the last read-back
	for _, e := range events {
		if e.Type != history.Committed || e.Outcome != history.OK || !groups[e.Group] {
			continue
		}
		k := groupTP{e.Group, e.TP()}
		if f, ok := final[k]; !ok || !e.Start.Before(f.Start) {
			final[k] = e
		}
		t := targets[k][e.Offset]
		if t != nil && len(t.committed) > 0 {
			continue
		}
		a := Anomaly{Kind: OffsetWithoutTxn, Topic: e.Topic, Partition: e.Partition, Offset: e.Offset, Group: e.Group, Proc: e.Proc}
		if t != nil {
			a.Detail = fmt.Sprintf("group %s's committed offset read back as %d, which only aborted transactions committed: %s",
				e.Group, e.Offset, strings.Join(t.aborted, " "))
		} else {
			a.Detail = fmt.Sprintf("group %s's committed offset read back as %d, which no transaction committed", e.Group, e.Offset)
		}
		st.txnAnomaly(ts, fmt.Sprintf("%s %s %v %d", OffsetWithoutTxn, e.Group, e.TP(), e.Offset), a)
	}
	if !st.res.Txn.Drained {
		return
	}
	// Each input, by the transformed values of it the drain holds: more than one is an input
	// processed by two transactions that both committed, its offsets not moved with the first.
	outputs := map[string][]string{}
	for _, v := range slices.Sorted(maps.Keys(ts.drained)) {
		if in, ok := history.Untransformed(v); ok {
			outputs[in] = append(outputs[in], v)
		}
	}
	for _, in := range slices.Sorted(maps.Keys(outputs)) {
		if outs := outputs[in]; len(outs) > 1 {
			first := ts.written[outs[0]]
			st.anomaly(Anomaly{Kind: Duplicate, Topic: first.Topic, Partition: first.Partition, Offset: first.Offset, Value: in,
				Detail: fmt.Sprintf("input %s transformed by %d committed transactions: %s", in, len(outs), strings.Join(outs, " "))})
		}
	}
	keys := slices.SortedFunc(maps.Keys(final), func(a, b groupTP) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.tp.Topic, b.tp.Topic), cmp.Compare(a.tp.Partition, b.tp.Partition))
	})
	for _, k := range keys {
		f := final[k]
		var missing []history.Read
		for _, in := range ts.inputs[k.tp] {
			if in.Offset < f.Offset && len(outputs[in.Value]) == 0 {
				missing = append(missing, in)
			}
		}
		if len(missing) == 0 {
			continue
		}
		m := missing[0]
		st.anomaly(Anomaly{Kind: Unprocessed, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Value: m.Value, Group: k.group,
			Detail: fmt.Sprintf("group %s committed offset %d of %s, but %d input records below it have no transformed record in the output (first at %d)",
				k.group, f.Offset, k.tp, len(missing), m.Offset)})
	}
}
