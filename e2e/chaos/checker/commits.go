package checker

import (
	"cmp"
	"fmt"
	"maps"
	"slices"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

type groupTP struct {
	group string
	tp    history.TP
}

// checkCommits checks that a group's committed offset of a partition never goes below one that was
// acknowledged before: neither a later acknowledged commit nor a read-back may be lower than any
// commit acknowledged before it began. Operations that overlap in time are not ordered, so they are
// not compared. A committed offset moving backwards makes a consumer group process records again
// after a restart, or, worse, skip the ones a lost commit covered.
func (st *state) checkCommits(events []history.Event) {
	acked := map[groupTP][]history.Event{} // acknowledged commits, by end
	later := map[groupTP][]history.Event{} // acknowledged commits and read-backs, by start
	for _, e := range events {
		k := groupTP{e.Group, e.TP()}
		switch {
		case e.Type == history.Commit && e.Outcome == history.OK:
			st.res.Commits++
			acked[k] = append(acked[k], e)
			later[k] = append(later[k], e)
		case e.Type == history.Committed && e.Outcome == history.OK:
			later[k] = append(later[k], e)
		}
	}
	keys := slices.SortedFunc(maps.Keys(later), func(a, b groupTP) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.tp.Topic, b.tp.Topic), cmp.Compare(a.tp.Partition, b.tp.Partition))
	})
	for _, k := range keys {
		st.checkCommitOrder(k, acked[k], later[k])
	}
}

func (st *state) checkCommitOrder(k groupTP, acked, later []history.Event) {
	slices.SortStableFunc(acked, func(a, b history.Event) int { return a.End.Compare(b.End) })
	slices.SortStableFunc(later, func(a, b history.Event) int { return a.Start.Compare(b.Start) })
	i := 0
	var high *history.Event // the highest commit acknowledged before the current event began
	for _, e := range later {
		for ; i < len(acked) && acked[i].End.Before(e.Start); i++ {
			if high == nil || acked[i].Offset > high.Offset {
				high = &acked[i]
			}
		}
		if high == nil || e.Offset >= high.Offset {
			continue
		}
		what := "committed"
		if e.Type == history.Committed {
			what = "read back"
		}
		st.anomaly(Anomaly{Kind: CommitBackwards, Topic: k.tp.Topic, Partition: k.tp.Partition, Offset: e.Offset,
			Group: k.group, Proc: e.Proc, Detail: fmt.Sprintf("%s offset %d at %s after %s's commit of %d was acknowledged at %s",
				what, e.Offset, e.Start.Format("15:04:05.000"), high.Proc, high.Offset, high.End.Format("15:04:05.000"))})
	}
}
