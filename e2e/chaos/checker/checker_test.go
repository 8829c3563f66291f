package checker

import (
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// hist builds a history by hand; every operation takes one millisecond, the next begins one
// millisecond later, and none overlaps another unless a test says so.
type hist struct {
	now    time.Time
	events []history.Event
}

func newHist() *hist { return &hist{now: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func (h *hist) tick() (time.Time, time.Time) {
	start, end := h.now, h.now.Add(time.Millisecond)
	h.now = end.Add(time.Millisecond)
	return start, end
}

func (h *hist) send(value string, p int32, outcome history.Outcome, offset int64) *hist {
	s, e := h.tick()
	ev := history.Event{Type: history.Send, Proc: "producer-1", Start: s, End: e, Outcome: outcome, Topic: "t", Partition: p, Value: value}
	if outcome == history.OK {
		ev.Offset = offset
	} else {
		ev.Err = "broker gone"
	}
	h.events = append(h.events, ev)
	return h
}

func (h *hist) ok(value string, p int32, offset int64) *hist {
	return h.send(value, p, history.OK, offset)
}

// poll records a poll of proc's session returning values at consecutive offsets from first.
func (h *hist) poll(proc string, session int, p int32, first int64, values ...string) *hist {
	s, e := h.tick()
	ev := history.Event{Type: history.Poll, Proc: proc, Session: session, Start: s, End: e, Outcome: history.OK}
	for i, v := range values {
		ev.Reads = append(ev.Reads, history.Read{Topic: "t", Partition: p, Offset: first + int64(i), Value: v})
	}
	h.events = append(h.events, ev)
	return h
}

func (h *hist) commit(proc string, p int32, offset int64) *hist {
	s, e := h.tick()
	h.events = append(h.events, history.Event{Type: history.Commit, Proc: proc, Group: "g", Start: s, End: e,
		Outcome: history.OK, Topic: "t", Partition: p, Offset: offset})
	return h
}

func (h *hist) committed(p int32, offset int64) *hist {
	s, e := h.tick()
	h.events = append(h.events, history.Event{Type: history.Committed, Proc: "checker", Group: "g", Start: s, End: e,
		Outcome: history.OK, Topic: "t", Partition: p, Offset: offset})
	return h
}

func (h *hist) end(p int32, offset int64) *hist {
	s, e := h.tick()
	h.events = append(h.events, history.Event{Type: history.End, Start: s, End: e, Topic: "t", Partition: p, Offset: offset})
	return h
}

func kinds(r Result) []Kind {
	set := map[Kind]bool{}
	for _, a := range r.Anomalies {
		set[a.Kind] = true
	}
	return slices.Sorted(maps.Keys(set))
}

// A run of everything that may happen without an anomaly: indeterminate sends read or not, a failed
// send never read, a group rebalancing and reading again from its commit, commits that overlap in
// time, a drain.
func TestCleanHistory(t *testing.T) {
	h := newHist().
		ok("a", 0, 0).ok("b", 0, 1).ok("c", 0, 2).
		send("maybe-read", 0, history.Indeterminate, 0).
		send("maybe-not", 0, history.Indeterminate, 0).
		send("failed", 0, history.Failed, 0).
		ok("d", 0, 4).ok("x", 1, 0).
		poll("assign-1", 1, 0, 0, "a", "b").poll("assign-1", 1, 0, 2, "c", "maybe-read", "d").
		poll("group-1", 1, 0, 0, "a", "b").commit("group-1", 0, 2).
		poll("group-2", 1, 0, 2, "c").poll("group-2", 1, 0, 3, "maybe-read").commit("group-2", 0, 4).
		poll("group-2", 2, 0, 4, "d"). // a new session may start anywhere
		poll("assign-1", 1, 1, 0, "x")
	// Two commits that overlap in time are not ordered: the lower may win.
	s, e := h.tick()
	h.events = append(h.events,
		history.Event{Type: history.Commit, Proc: "group-1", Group: "g", Start: s, End: e.Add(time.Millisecond), Outcome: history.OK, Topic: "t", Offset: 5},
		history.Event{Type: history.Commit, Proc: "group-2", Group: "g", Start: e, End: e.Add(2 * time.Millisecond), Outcome: history.OK, Topic: "t", Offset: 4})
	h.tick()
	h.tick()
	h.end(0, 5).end(1, 1).
		poll("drain", 1, 0, 0, "a", "b", "c", "maybe-read", "d").poll("drain", 1, 1, 0, "x").
		committed(0, 5)
	r := Check(h.events)
	if !r.OK() {
		t.Fatalf("anomalies in a clean history: %v", r.Anomalies)
	}
	if r.Sends != 8 || r.Acked != 5 || r.Failed != 1 || r.Indeterminate != 2 || r.Commits != 4 || r.Partitions != 2 {
		t.Errorf("counts %+v", r)
	}
}

func TestEachAnomaly(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    *hist
		want []Kind
	}{
		{"lost below a later read", newHist().ok("a", 0, 0).ok("b", 0, 1).poll("drain", 1, 0, 1, "b"),
			[]Kind{Lost, Gap}},
		{"lost below the log end", newHist().ok("a", 0, 0).end(0, 1),
			[]Kind{Lost, Gap}},
		{"unseen", newHist().ok("a", 0, 0),
			[]Kind{Unseen}},
		{"duplicate", newHist().send("a", 0, history.Indeterminate, 0).poll("drain", 1, 0, 0, "a", "a"),
			[]Kind{Duplicate}},
		{"inconsistent offset", newHist().ok("a", 0, 0).send("c", 0, history.Indeterminate, 0).
			poll("assign-1", 1, 0, 0, "a").poll("drain", 1, 0, 0, "c"),
			[]Kind{InconsistentOffset}},
		{"wrong offset", newHist().ok("a", 0, 0).send("b", 0, history.Indeterminate, 0).poll("drain", 1, 0, 0, "b", "a"),
			[]Kind{WrongOffset}},
		{"nonmonotonic", newHist().ok("a", 0, 0).ok("b", 0, 1).
			poll("assign-1", 1, 0, 0, "a", "b").poll("assign-1", 1, 0, 1, "b"),
			[]Kind{Nonmonotonic}},
		{"skip", newHist().ok("a", 0, 0).ok("b", 0, 1).ok("c", 0, 2).
			poll("assign-1", 1, 0, 0, "a").poll("assign-1", 1, 0, 2, "c").poll("drain", 1, 0, 0, "a", "b", "c"),
			[]Kind{Skip}},
		{"gap", newHist().ok("a", 0, 0).send("b", 0, history.Indeterminate, 0).ok("c", 0, 2).
			poll("assign-1", 1, 0, 0, "a").poll("assign-1", 2, 0, 2, "c"),
			[]Kind{Gap}},
		{"failed read", newHist().send("f", 0, history.Failed, 0).poll("drain", 1, 0, 0, "f"),
			[]Kind{FailedRead}},
		{"phantom", newHist().poll("drain", 1, 0, 0, "nobody sent this"),
			[]Kind{Phantom}},
		{"commit backwards", newHist().commit("group-1", 0, 5).commit("group-2", 0, 3),
			[]Kind{CommitBackwards}},
		{"commit lost on read-back", newHist().commit("group-1", 0, 5).committed(0, 4),
			[]Kind{CommitBackwards}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Check(tc.h.events)
			if got := kinds(r); !slices.Equal(got, slices.Sorted(slices.Values(tc.want))) {
				t.Errorf("found %v, want %v; anomalies:\n%v", got, tc.want, r.Anomalies)
			}
			for _, k := range tc.want {
				if r.Count(k) == 0 {
					t.Errorf("no %s", k)
				}
			}
		})
	}
}

// Anomalies come with where they are and what was seen, so that a report can be acted on.
func TestAnomalyDetail(t *testing.T) {
	r := Check(newHist().ok("a", 0, 0).ok("b", 0, 1).ok("c", 0, 2).
		poll("assign-1", 1, 0, 0, "a").poll("assign-1", 1, 0, 2, "c").end(0, 3).events)
	var lost, gap, skip *Anomaly
	for i, a := range r.Anomalies {
		switch a.Kind {
		case Lost:
			lost = &r.Anomalies[i]
		case Gap:
			gap = &r.Anomalies[i]
		case Skip:
			skip = &r.Anomalies[i]
		}
	}
	if lost == nil || lost.Value != "b" || lost.Offset != 1 || lost.Topic != "t" {
		t.Errorf("lost: %+v", lost)
	}
	if gap == nil || gap.Offset != 1 || gap.Detail == "" {
		t.Errorf("gap: %+v", gap)
	}
	if skip == nil || skip.Proc != "assign-1" || skip.Session != 1 || skip.Offset != 2 {
		t.Errorf("skip: %+v", skip)
	}
}

// Polls are ordered by start time, not by the order they were recorded in.
func TestPollsOrderedByStart(t *testing.T) {
	h := newHist().ok("a", 0, 0).ok("b", 0, 1).poll("assign-1", 1, 0, 0, "a").poll("assign-1", 1, 0, 1, "b")
	n := len(h.events)
	h.events[n-1], h.events[n-2] = h.events[n-2], h.events[n-1]
	if r := Check(h.events); !r.OK() {
		t.Errorf("anomalies: %v", r.Anomalies)
	}
}

func TestUnavailability(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	var events []history.Event
	ack := func(p int32, d time.Duration) {
		events = append(events, history.Event{Type: history.Send, Outcome: history.OK, Topic: "t", Partition: p, Start: at(d - time.Millisecond), End: at(d)})
	}
	fault := func(kind, phase string, d time.Duration) {
		events = append(events, history.Event{Type: history.Fault, Fault: kind, Phase: phase, Start: at(d), End: at(d)})
	}
	for d := time.Duration(0); d <= 10*time.Second; d += 100 * time.Millisecond {
		if d < 2*time.Second || d > 5*time.Second {
			ack(0, d)
		}
		ack(1, d)
	}
	fault("agent-kill", history.PhaseInject, 2*time.Second)
	fault("agent-kill", history.PhaseHeal, 4*time.Second)
	fault("agent-kill", history.PhaseRecovered, 5*time.Second)
	fault("s3-errors", history.PhaseInject, 7*time.Second)
	fault("s3-errors", history.PhaseRecovered, 8*time.Second)
	slices.SortStableFunc(events, func(a, b history.Event) int { return a.End.Compare(b.End) })

	ws := Windows(events)
	if len(ws) != 2 || ws[0].Fault != "agent-kill" || !ws[0].End.Equal(at(5*time.Second)) {
		t.Fatalf("windows %+v", ws)
	}
	u := Unavailability(events)
	tp0, tp1 := history.TP{Topic: "t", Partition: 0}, history.TP{Topic: "t", Partition: 1}
	if got := u["agent-kill"][tp0].Longest; got != 3200*time.Millisecond {
		t.Errorf("t/0 under agent-kill: %v, want 3.2s (acks at 1.9s and 5.1s)", got)
	}
	if got := u["agent-kill"][tp1].Longest; got != 100*time.Millisecond {
		t.Errorf("t/1 under agent-kill: %v, want 100ms", got)
	}
	if got := u["s3-errors"][tp0].Longest; got != 100*time.Millisecond {
		t.Errorf("t/0 under s3-errors: %v, want 100ms", got)
	}
}
