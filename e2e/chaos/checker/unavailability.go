package checker

import (
	"slices"
	"sort"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// Window is one fault's span: from the start of its injection until the cluster recovered (or, if it
// never did, until it was healed).
type Window struct {
	Fault  string
	Detail string
	Start  time.Time
	End    time.Time
}

// Windows returns the fault windows of a history, in order. Faults are injected one at a time.
func Windows(events []history.Event) []Window {
	var ws []Window
	var cur *Window
	for _, e := range events {
		if e.Type != history.Fault {
			continue
		}
		switch e.Phase {
		case history.PhaseInject:
			if cur != nil {
				ws = append(ws, *cur)
			}
			cur = &Window{Fault: e.Fault, Detail: e.Detail, Start: e.Start, End: e.End}
		case history.PhaseHeal, history.PhaseRecovered:
			if cur != nil && cur.Fault == e.Fault {
				cur.End = e.End
			}
		}
	}
	if cur != nil {
		ws = append(ws, *cur)
	}
	return ws
}

// Outage is the longest time one partition went without an acknowledged send while faults of one
// kind were in effect.
type Outage struct {
	Fault   string
	TP      history.TP
	Longest time.Duration
	From    time.Time // the last acknowledgement before it
}

// Unavailability measures, for each fault kind and each partition, the longest interval between two
// acknowledged sends that overlaps a window of that kind: what a producer saw of the fault. A
// partition acknowledged nothing after its last acknowledgement counts as unavailable until the end
// of the history.
func Unavailability(events []history.Event) map[string]map[history.TP]Outage {
	acks := map[history.TP][]time.Time{}
	var last time.Time
	for _, e := range events {
		if e.End.After(last) {
			last = e.End
		}
		if e.Type == history.Send && e.Outcome == history.OK {
			acks[e.TP()] = append(acks[e.TP()], e.End)
		}
	}
	out := map[string]map[history.TP]Outage{}
	for tp, ts := range acks {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		if ts[len(ts)-1].Before(last) {
			ts = append(ts, last)
		}
		for _, w := range Windows(events) {
			o, ok := longestGap(ts, w)
			if !ok {
				continue
			}
			o.Fault, o.TP = w.Fault, tp
			if out[w.Fault] == nil {
				out[w.Fault] = map[history.TP]Outage{}
			}
			if prev, ok := out[w.Fault][tp]; !ok || o.Longest > prev.Longest {
				out[w.Fault][tp] = o
			}
		}
	}
	return out
}

// longestGap is the longest interval between consecutive times of ts (sorted) that overlaps w.
func longestGap(ts []time.Time, w Window) (Outage, bool) {
	// j: the last time at or before the window's start (the gap the window opens in).
	j := sort.Search(len(ts), func(i int) bool { return ts[i].After(w.Start) }) - 1
	j = max(j, 0)
	var o Outage
	found := false
	for ; j+1 < len(ts) && ts[j].Before(w.End); j++ {
		if g := ts[j+1].Sub(ts[j]); !found || g > o.Longest {
			o.Longest, o.From, found = g, ts[j], true
		}
	}
	return o, found
}
