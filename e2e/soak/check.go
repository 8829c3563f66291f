package main

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// The end check: a consumer reads every partition from its log start to its end, and each record
// read is held against the ledger. Records whose timestamp is inside the retention window must all
// be there, once, at the offset their acknowledgement reported; older ones may be gone.

// Kinds of anomaly the end check reports; any one fails the run.
const (
	anomalyLost       = "lost"       // acknowledged, inside retention, never read
	anomalyDuplicate  = "duplicate"  // a record read more than once
	anomalyMoved      = "moved"      // read at an offset or in a partition other than its acknowledgement's
	anomalyOrder      = "order"      // an offset not above the previous one read in its partition
	anomalyGap        = "gap"        // offsets skipped between two records read in a partition, not by retention
	anomalyForeign    = "foreign"    // a record the producer never sent, or whose value does not match its key
	anomalyIncomplete = "incomplete" // a partition's read ended short of its end offset
)

// anomalyKinds is the order reports list them in.
var anomalyKinds = []string{anomalyLost, anomalyDuplicate, anomalyMoved, anomalyOrder, anomalyGap, anomalyForeign, anomalyIncomplete}

// maxExamples bounds the anomalies kept in full per kind; all are counted.
const maxExamples = 10

// anomaly is one finding of the end check.
type anomaly struct {
	Kind      string `json:"kind"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Seq       int64  `json:"seq"` // -1: not known
	Detail    string `json:"detail"`
}

func (a anomaly) String() string {
	s := fmt.Sprintf("%s: partition %d offset %d", a.Kind, a.Partition, a.Offset)
	if a.Seq >= 0 {
		s += fmt.Sprintf(" record %d", a.Seq)
	}
	return s + ": " + a.Detail
}

// checker holds the ledger against the records read. Records are observed in the order the consumer
// returns them, which is offset order within a partition.
type checker struct {
	recs     []sentRecord
	last     map[int32]int64 // the last offset read in each partition
	gaps     map[int32][]gap // offsets skipped, judged once the retention window is known
	read     int64
	unacked  int64 // records read whose produce failed or was never answered: allowed
	counts   map[string]int64
	examples []anomaly
}

// newChecker checks against the ledger's records as they stand: the producer must be done.
func newChecker(l *ledger) *checker {
	l.mu.Lock()
	defer l.mu.Unlock()
	return &checker{recs: l.recs, last: map[int32]int64{}, gaps: map[int32][]gap{}, counts: map[string]int64{}}
}

// gap is a range of offsets a partition's read skipped. A consumer whose position fell below a log
// start that retention moved meanwhile resets to the new start, skipping records that were outside
// the window: such a gap is no anomaly. finish tells them apart.
type gap struct {
	from, to int64 // inclusive
	inside   int64 // acknowledged records inside the window at these offsets
}

func (c *checker) report(a anomaly) {
	c.counts[a.Kind]++
	if c.counts[a.Kind] <= maxExamples {
		c.examples = append(c.examples, a)
	}
}

// observe checks one record read from partition at offset.
func (c *checker) observe(partition int32, offset int64, key, value []byte) {
	c.read++
	if last, ok := c.last[partition]; ok {
		switch {
		case offset <= last:
			c.report(anomaly{anomalyOrder, partition, offset, -1, fmt.Sprintf("read after offset %d", last)})
		case offset > last+1:
			c.gaps[partition] = append(c.gaps[partition], gap{from: last + 1, to: offset - 1})
		}
	}
	c.last[partition] = max(offset, c.last[partition])
	seq, err := decodeRecord(key, value)
	if err != nil || seq >= int64(len(c.recs)) {
		c.report(anomaly{anomalyForeign, partition, offset, -1, fmt.Sprintf("key %q: not a record this run sent", short(key))})
		return
	}
	r := &c.recs[seq]
	if r.reads < math.MaxUint8 {
		r.reads++
	}
	if r.reads == 2 {
		c.report(anomaly{anomalyDuplicate, partition, offset, seq, "read a second time"})
	}
	switch {
	case r.outcome != outcomeAcked:
		c.unacked++
	case r.partition != partition || r.offset != offset:
		c.report(anomaly{anomalyMoved, partition, offset, seq,
			fmt.Sprintf("acknowledged at partition %d offset %d", r.partition, r.offset)})
	}
}

// incomplete reports that partition's read ended before its end offset.
func (c *checker) incomplete(partition int32, next, end int64) {
	c.report(anomaly{anomalyIncomplete, partition, next, -1, fmt.Sprintf("read stopped at offset %d of %d", next, end)})
}

// checkResult is the end check's account.
type checkResult struct {
	Sent        int64            `json:"sent"`
	Acked       int64            `json:"acked"`
	Failed      int64            `json:"failed"`       // produce answered with an error
	Unanswered  int64            `json:"unanswered"`   // produce never answered
	Read        int64            `json:"read"`         // records read
	Required    int64            `json:"required"`     // acknowledged inside the retention window
	Gone        int64            `json:"gone"`         // acknowledged, outside the window, not read: expected
	SkippedGaps int64            `json:"skipped_gaps"` // offset ranges the read skipped holding no record inside the window
	KeptOutside int64            `json:"kept_outside"` // acknowledged, outside the window, still read
	UnackedRead int64            `json:"unacked_read"` // read although the produce failed or was never answered
	Anomalies   map[string]int64 `json:"anomalies"`
	Examples    []anomaly        `json:"examples"`
}

// finish accounts for every record sent. cutoffMs is the oldest timestamp retention must keep
// (math.MinInt64: everything).
func (c *checker) finish(cutoffMs int64) checkResult {
	res := checkResult{Read: c.read, UnackedRead: c.unacked, Sent: int64(len(c.recs))}
	for seq := range c.recs {
		r := &c.recs[seq]
		switch r.outcome {
		case outcomeFailed:
			res.Failed++
			continue
		case outcomePending:
			res.Unanswered++
			continue
		}
		res.Acked++
		inside := r.tsMs >= cutoffMs
		if inside {
			c.countInGap(r)
		}
		switch {
		case inside:
			res.Required++
			if r.reads == 0 {
				c.report(anomaly{anomalyLost, r.partition, r.offset, int64(seq), "acknowledged inside retention, not read"})
			}
		case r.reads == 0:
			res.Gone++
		default:
			res.KeptOutside++
		}
	}
	c.judgeGaps(cutoffMs, &res)
	res.Anomalies = c.counts
	res.Examples = c.examples
	return res
}

// countInGap counts r, a record inside the window, against the gap of its partition it falls in.
func (c *checker) countInGap(r *sentRecord) {
	gs := c.gaps[r.partition]
	for i := range gs {
		if r.offset >= gs[i].from && r.offset <= gs[i].to {
			gs[i].inside++
		}
	}
}

// judgeGaps reports every gap without retention, and with it those over a record inside the window.
func (c *checker) judgeGaps(cutoffMs int64, res *checkResult) {
	for _, p := range slices.Sorted(maps.Keys(c.gaps)) {
		for _, g := range c.gaps[p] {
			if cutoffMs != math.MinInt64 && g.inside == 0 {
				res.SkippedGaps++
				continue
			}
			c.report(anomaly{anomalyGap, p, g.to + 1, -1, fmt.Sprintf("offsets %d to %d were not read (%d acknowledged "+
				"inside the window)", g.from, g.to, g.inside)})
		}
	}
}

// anomalies is the number of anomalies found.
func (r checkResult) anomalies() int64 {
	var n int64
	for _, v := range r.Anomalies {
		n += v
	}
	return n
}

// summary says what the anomalies were, by kind, in the report's order.
func (r checkResult) summary() string {
	var parts []string
	for _, k := range anomalyKinds {
		if n := r.Anomalies[k]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	return strings.Join(parts, ", ")
}

// sortedExamples orders the examples by kind, then partition and offset.
func (r checkResult) sortedExamples() []anomaly {
	out := slices.Clone(r.Examples)
	slices.SortStableFunc(out, func(a, b anomaly) int {
		if d := slices.Index(anomalyKinds, a.Kind) - slices.Index(anomalyKinds, b.Kind); d != 0 {
			return d
		}
		return cmp.Or(cmp.Compare(a.Partition, b.Partition), cmp.Compare(a.Offset, b.Offset))
	})
	return out
}

func short(b []byte) string {
	if len(b) > 32 {
		return string(b[:32]) + "…"
	}
	return string(b)
}
