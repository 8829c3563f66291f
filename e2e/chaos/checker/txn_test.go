package checker

import (
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// txn records a transaction writing values to partition p of topic "x" at consecutive offsets from
// first (-1: unacknowledged), asking to commit or abort at its end.
func (h *hist) txn(id string, outcome history.Outcome, p int32, first int64, values ...string) *hist {
	s, e := h.tick()
	ev := history.Event{Type: history.Txn, Proc: "txn-producer-1", Txn: id, Start: s, End: e, Decided: e.Add(-time.Millisecond / 2),
		Outcome: outcome, Detail: "commit"}
	if outcome == history.Failed {
		ev.Detail = "abort"
	}
	if outcome == history.Indeterminate {
		ev.Err = "broker gone"
	}
	for i, v := range values {
		off := first
		if first >= 0 {
			off = first + int64(i)
		}
		ev.Writes = append(ev.Writes, history.Read{Topic: "x", Partition: p, Offset: off, Value: v})
	}
	h.events = append(h.events, ev)
	return h
}

// ctp records a consume-transform-produce transaction of group "ctp": it read values from "x"/p
// (at consecutive offsets from first), wrote their transformed values to "y"/p at consecutive
// offsets from out, and committed offset first+len(values) of "x"/p.
func (h *hist) ctp(id string, outcome history.Outcome, p int32, first, out int64, values ...string) *hist {
	s, e := h.tick()
	ev := history.Event{Type: history.Txn, Proc: "ctp-1.1", Txn: id, Start: s, End: e, Decided: e.Add(-time.Millisecond / 2),
		Outcome: outcome, Group: "ctp", Detail: "commit",
		TxnOffsets: []history.Read{{Topic: "x", Partition: p, Offset: first + int64(len(values))}}}
	for i, v := range values {
		ev.Writes = append(ev.Writes, history.Read{Topic: "y", Partition: p, Offset: out + int64(i), Value: history.Transformed(v, id)})
	}
	h.events = append(h.events, ev)
	return h
}

// rc records a read_committed poll of proc returning values of topic/p at consecutive offsets.
func (h *hist) rc(proc, topic string, p int32, first int64, values ...string) *hist {
	s, e := h.tick()
	ev := history.Event{Type: history.ReadCommitted, Proc: proc, Session: 1, Start: s, End: e, Outcome: history.OK}
	for i, v := range values {
		ev.Reads = append(ev.Reads, history.Read{Topic: topic, Partition: p, Offset: first + int64(i), Value: v})
	}
	h.events = append(h.events, ev)
	return h
}

func (h *hist) drain(topic string, p int32, first int64, values ...string) *hist {
	return h.rc(history.TxnDrainProc, topic, p, first, values...)
}

func (h *hist) drained() *hist {
	s, e := h.tick()
	h.events = append(h.events, history.Event{Type: history.TxnDrained, Start: s, End: e, Outcome: history.OK})
	return h
}

func (h *hist) groupOffset(group, topic string, p int32, offset int64) *hist {
	s, e := h.tick()
	h.events = append(h.events, history.Event{Type: history.Committed, Proc: "offsets-reader", Group: group, Start: s, End: e,
		Outcome: history.OK, Topic: topic, Partition: p, Offset: offset})
	return h
}

func wantOnly(t *testing.T, r Result, want ...Kind) {
	t.Helper()
	if got := kinds(r); !slices.Equal(got, want) {
		t.Errorf("anomaly kinds %v, want %v: %v", got, want, r.Anomalies)
	}
}

// A clean history: a committed transaction read whole (markers take offsets 2 and 5), an aborted one
// never read, an indeterminate one that committed and one that aborted, a consume-transform-produce
// transaction whose offsets were read back.
func TestTxnCleanHistory(t *testing.T) {
	t.Parallel()
	h := newHist().
		txn("p/1", history.OK, 0, 0, "a", "b").
		txn("p/2", history.Failed, 0, 3, "c").
		txn("p/3", history.Indeterminate, 0, 6, "d", "e").
		txn("p/4", history.Indeterminate, 0, -1, "f").
		rc("rc-1", "x", 0, 0, "a", "b").
		ctp("c/1", history.OK, 0, 0, 0, "a", "b").
		ctp("c/2", history.Failed, 0, 3, 3, "d"). // aborted: its offset never shows
		groupOffset("ctp", "x", 0, 2).
		drain("x", 0, 0, "a", "b").
		drain("x", 0, 6, "d", "e").
		drain("y", 0, 0, history.Transformed("a", "c/1"), history.Transformed("b", "c/1")).
		drained()
	r := Check(h.events)
	wantOnly(t, r)
	if r.Txn.Txns != 6 || r.Txn.Committed != 2 || r.Txn.Aborted != 2 || r.Txn.Indeterminate != 2 || !r.Txn.Drained {
		t.Errorf("counts %+v", r.Txn)
	}
}

func TestTxnAbortedRead(t *testing.T) {
	t.Parallel()
	h := newHist().
		txn("p/1", history.Failed, 0, 0, "a", "b").
		rc("rc-1", "x", 0, 0, "a", "b") // both records of the aborted transaction: reported once
	r := Check(h.events)
	wantOnly(t, r, AbortedRead)
	if r.Count(AbortedRead) != 1 {
		t.Errorf("%d aborted reads, want one for the transaction: %v", r.Count(AbortedRead), r.Anomalies)
	}
	// The final drain reading an aborted record is as bad.
	wantOnly(t, Check(newHist().txn("p/1", history.Failed, 0, 0, "a").drain("x", 0, 0, "a").drained().events), AbortedRead)
}

func TestTxnUncommittedRead(t *testing.T) {
	t.Parallel()
	h := newHist().rc("rc-1", "x", 0, 0, "a").txn("p/1", history.OK, 0, 0, "a").drain("x", 0, 0, "a").drained()
	wantOnly(t, Check(h.events), UncommittedRead)
	// A poll that ended after the commit was asked for is fine, whatever the transaction's end.
	h = newHist().txn("p/1", history.OK, 0, 0, "a").rc("rc-1", "x", 0, 0, "a").drain("x", 0, 0, "a").drained()
	wantOnly(t, Check(h.events))
}

func TestTxnLostCommitted(t *testing.T) {
	t.Parallel()
	h := newHist().txn("p/1", history.OK, 0, 0, "a", "b", "c").rc("rc-1", "x", 0, 0, "a", "b", "c").
		drain("x", 0, 0, "a", "b").drained()
	r := Check(h.events)
	wantOnly(t, r, LostCommitted)
	// Without a complete drain nothing can be called lost.
	h = newHist().txn("p/1", history.OK, 0, 0, "a", "b").drain("x", 0, 0, "a")
	wantOnly(t, Check(h.events))
}

func TestTxnIndeterminateAllOrNothing(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		h    *hist
		want []Kind
	}{
		"all":     {newHist().txn("p/1", history.Indeterminate, 0, 0, "a", "b").drain("x", 0, 0, "a", "b").drained(), nil},
		"nothing": {newHist().txn("p/1", history.Indeterminate, 0, 0, "a", "b").drained(), nil},
		"partial": {newHist().txn("p/1", history.Indeterminate, 0, 0, "a", "b").drain("x", 0, 0, "a").drained(), []Kind{PartialTxn}},
		"seen, then gone": {newHist().txn("p/1", history.Indeterminate, 0, 0, "a", "b").rc("rc-1", "x", 0, 0, "a", "b").drained(),
			[]Kind{PartialTxn}},
	} {
		t.Run(name, func(t *testing.T) { wantOnly(t, Check(tc.h.events), tc.want...) })
	}
}

func TestTxnDuplicateAndPhantom(t *testing.T) {
	t.Parallel()
	h := newHist().txn("p/1", history.OK, 0, 0, "a").drain("x", 0, 0, "a").rc("rc-1", "x", 0, 3, "a").drained()
	wantOnly(t, Check(h.events), Duplicate, WrongOffset)
	h = newHist().drain("x", 0, 0, "zz").drained()
	wantOnly(t, Check(h.events), Phantom)
}

func TestTxnOffsetsMoveOnlyWithTheirTransaction(t *testing.T) {
	t.Parallel()
	base := func() *hist {
		return newHist().
			txn("p/1", history.OK, 0, 0, "a", "b", "c").
			ctp("c/1", history.OK, 0, 0, 0, "a").
			ctp("c/2", history.Failed, 0, 1, 2, "b", "c")
	}
	wantOnly(t, Check(base().groupOffset("ctp", "x", 0, 1).events))
	// The group's offset moved to what only the aborted transaction committed.
	r := Check(base().groupOffset("ctp", "x", 0, 3).events)
	wantOnly(t, r, OffsetWithoutTxn)
	// Or to what no transaction committed.
	wantOnly(t, Check(base().groupOffset("ctp", "x", 0, 2).events), OffsetWithoutTxn)
}

func TestTxnUnprocessedInput(t *testing.T) {
	t.Parallel()
	base := func() *hist {
		return newHist().
			txn("p/1", history.OK, 0, 0, "a", "b").
			ctp("c/1", history.Indeterminate, 0, 0, 0, "a", "b").
			groupOffset("ctp", "x", 0, 2).
			drain("x", 0, 0, "a", "b")
	}
	// The offsets of the indeterminate transaction are visible: so must its writes be.
	wantOnly(t, Check(base().drain("y", 0, 0, history.Transformed("a", "c/1"), history.Transformed("b", "c/1")).drained().events))
	wantOnly(t, Check(base().drained().events), Unprocessed)
}

// An input processed by two transactions that both committed: the group's offsets did not move with
// the first.
func TestTxnInputProcessedTwice(t *testing.T) {
	t.Parallel()
	h := newHist().
		txn("p/1", history.OK, 0, 0, "a").
		ctp("c/1", history.OK, 0, 0, 0, "a").
		ctp("c/2", history.OK, 0, 0, 2, "a").
		groupOffset("ctp", "x", 0, 1).
		drain("x", 0, 0, "a").
		drain("y", 0, 0, history.Transformed("a", "c/1")).
		drain("y", 0, 2, history.Transformed("a", "c/2")).
		drained()
	wantOnly(t, Check(h.events), Duplicate)
	// The second one aborted, and was not read: fine.
	h = newHist().
		txn("p/1", history.OK, 0, 0, "a").
		ctp("c/1", history.Failed, 0, 0, 0, "a").
		ctp("c/2", history.OK, 0, 0, 2, "a").
		groupOffset("ctp", "x", 0, 1).
		drain("x", 0, 0, "a").
		drain("y", 0, 2, history.Transformed("a", "c/2")).
		drained()
	wantOnly(t, Check(h.events))
}
