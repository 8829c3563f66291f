package lifecycle

import (
	"math"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// Compaction is what a compacted topic's cleaner follows: Kafka's topic configs of the same names.
type Compaction struct {
	MinLag          time.Duration // min.compaction.lag.ms: records younger are not cleaned
	MaxLag          time.Duration // max.compaction.lag.ms: a dirty record older forces a clean; <= 0: none
	MinDirtyRatio   float64       // min.cleanable.dirty.ratio
	DeleteRetention time.Duration // delete.retention.ms: tombstones stay this long after their segment is clean
}

// DefaultCompaction is Kafka's defaults.
func DefaultCompaction() Compaction {
	return Compaction{MaxLag: -1, MinDirtyRatio: 0.5, DeleteRetention: 24 * time.Hour}
}

// tailAge is the age at which the tail is merged: on a compacted topic with a max.compaction.lag.ms, at
// most half of it, so that a record reaches a segment, which the cleaner cleans, in time.
func (p Policy) tailAge() time.Duration {
	if c := p.Compaction; c != nil && c.MaxLag > 0 {
		return min(p.TailAge, c.MaxLag/2)
	}
	return p.TailAge
}

// cleanTo is where a segment's dirty records begin (its base offset when none is clean).
func cleanTo(s coord.IndexEntry) int64 {
	return max(s.Segment.CleanTo, s.BaseOffset)
}

// DirtySection is a compacted partition's cleaner state as planning sees it.
type DirtySection struct {
	From, To   int64   // the cleanable dirty records, [From, To)
	Dirty      int64   // bytes of them (a partly clean segment counted in proportion)
	Clean      int64   // bytes of the clean records before them
	Ratio      float64 // Dirty / (Dirty + Clean); 0 when there is nothing
	OldestTime int64   // unix ms of the oldest dirty record (its segment's min timestamp or commit time); 0: none
}

// Dirty measures pi's cleanable dirty section under c: from the first dirty offset to the first segment
// whose newest record is younger than MinLag. Only segments count: the tail is never cleaned.
func Dirty(pi coord.PartitionIndex, c Compaction, now time.Time) DirtySection {
	var d DirtySection
	segs := pi.Segments
	i := 0
	for ; i < len(segs) && cleanTo(segs[i]) > segs[i].LastOffset; i++ {
		d.Clean += segs[i].Bytes
	}
	if i == len(segs) {
		if i > 0 {
			d.From, d.To = segs[i-1].LastOffset+1, segs[i-1].LastOffset+1
		}
		return d
	}
	first := segs[i]
	d.From, d.To = cleanTo(first), cleanTo(first)
	d.OldestTime = first.Segment.MinTimestamp
	if d.OldestTime <= 0 {
		d.OldestTime = first.Segment.Time
	}
	young := now.Add(-c.MinLag).UnixMilli()
	for ; i < len(segs); i++ {
		s := segs[i]
		newest := s.MaxTimestamp
		if newest <= 0 {
			newest = s.Segment.Time
		}
		if c.MinLag > 0 && newest > young {
			break
		}
		span := float64(s.LastOffset - s.BaseOffset + 1)
		dirty := int64(math.Round(float64(s.Bytes) * float64(s.LastOffset+1-cleanTo(s)) / span))
		d.Dirty += dirty
		d.Clean += s.Bytes - dirty
		d.To = s.LastOffset + 1
	}
	if d.Dirty+d.Clean > 0 && d.To > d.From {
		d.Ratio = float64(d.Dirty) / float64(d.Dirty+d.Clean)
	}
	return d
}

// clean is due when the cleanable dirty section's ratio reaches MinDirtyRatio, or its oldest record is
// older than MaxLag.
func clean(pi coord.PartitionIndex, p Policy, now time.Time) (Step, bool) {
	c := p.Compaction
	if c == nil {
		return Step{}, false
	}
	d := Dirty(pi, *c, now)
	tombstones := tombstonesDue(pi, *c, now)
	if d.To <= d.From && !tombstones {
		return Step{}, false
	}
	overdue := c.MaxLag > 0 && d.OldestTime > 0 && now.Sub(time.UnixMilli(d.OldestTime)) >= c.MaxLag
	if d.Ratio < c.MinDirtyRatio && !overdue && !tombstones {
		return Step{}, false
	}
	step := Step{Kind: StepClean, DirtyFrom: d.From, DirtyTo: d.To}
	for _, s := range pi.Segments {
		if s.BaseOffset >= d.To {
			break
		}
		step.Segments = append(step.Segments, s)
	}
	return step, true
}

// tombstonesDue reports a clean segment holding tombstones whose delete.retention.ms has passed: a
// clean removes them even when nothing is dirty.
func tombstonesDue(pi coord.PartitionIndex, c Compaction, now time.Time) bool {
	for _, s := range pi.Segments {
		if s.Segment.Tombstones > 0 && s.Segment.Cleaned > 0 && now.Sub(time.UnixMilli(s.Segment.Cleaned)) >= c.DeleteRetention {
			return true
		}
	}
	return false
}
