package lifecycle

import (
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// Policy is what a partition's maintenance follows: when its uncompacted tail is merged into a
// segment, how segments merge into larger ones, and what retention keeps. It comes from the topic's
// configs and the cluster's defaults.
type Policy struct {
	TailEntries int           // merge the tail once it holds this many entries,
	TailBytes   int64         // or this many bytes,
	TailAge     time.Duration // or its oldest entry is this old
	// MergeInput bounds what one tail merge reads (it holds the new segment in memory): at least one
	// entry, whatever its size.
	MergeInput int64
	FanIn      int           // segments of one level merged into one of the next
	MaxBytes   int64         // the largest segment a merge makes (segment.bytes)
	MaxSpan    time.Duration // the longest time a merged segment's records span (segment.ms)
	// RetentionTime and RetentionBytes are Kafka's retention.ms and retention.bytes; negative keeps
	// forever.
	RetentionTime  time.Duration
	RetentionBytes int64
	// Compaction is a compacted topic's cleaner policy; nil for a topic that is not compacted.
	Compaction *Compaction
}

// Defaults of a Policy (docs/INTERNALS.md, "Triggers and levels").
const (
	DefaultTailEntries = 32
	DefaultTailBytes   = 4 << 20
	DefaultTailAge     = time.Minute
	DefaultMergeInput  = 16 << 20
	DefaultFanIn       = 8
	DefaultMaxBytes    = 1 << 30            // Kafka's segment.bytes
	DefaultMaxSpan     = 7 * 24 * time.Hour // Kafka's segment.ms
)

// MaxAborted is the most aborted transactions a merge puts in one segment's key (Segment.Aborted,
// about 60 bytes each: 15 KiB), so that the key stays far below etcd's request size whatever the
// workload aborts. A merge stops before the entry that would pass it (one entry is merged whatever it
// holds), so a partition that aborts many small transactions keeps more, smaller segments.
const MaxAborted = 256

// BusyTailFactor is how much longer a tail may grow, in entries, while the agent's produce path is
// saturated (MaintainConfig.Busy): a tail merge due only by its entry count waits until the tail holds
// this many times TailEntries. A merge costs one PUT and two fenced Txns whatever it holds, and a
// saturated agent writes small entries to many partitions at once (1,024 partitions: a tail merge per
// partition every 32 flushes is 32 PUTs and 64 Txns per flush), so merging later makes fewer, larger
// merges, out of the way of the burst (docs/INTERNALS.md, "Triggers and levels").
const BusyTailFactor = 4

// Busy is p as a saturated agent follows it: its entry trigger BusyTailFactor times higher.
func (p Policy) Busy() Policy {
	if p.TailEntries > 0 {
		p.TailEntries *= BusyTailFactor
	}
	return p
}

// DefaultPolicy keeps every record and merges with the defaults above.
func DefaultPolicy() Policy {
	return Policy{TailEntries: DefaultTailEntries, TailBytes: DefaultTailBytes, TailAge: DefaultTailAge,
		MergeInput: DefaultMergeInput, FanIn: DefaultFanIn, MaxBytes: DefaultMaxBytes, MaxSpan: DefaultMaxSpan,
		RetentionTime: -1, RetentionBytes: -1}
}

// StepKind names what one maintenance step does.
type StepKind int

const (
	StepNone          StepKind = iota
	StepMoveLogStart           // retention: the log start moves up, segments below it go
	StepMergeTail              // a prefix of the tail becomes one level-1 segment
	StepMergeSegments          // adjacent segments of one level become one of the next
	StepClean                  // a compacted topic's segments are cleaned (clean.go)
)

// Step is one maintenance step of a partition.
type Step struct {
	Kind     StepKind
	LogStart int64             // StepMoveLogStart: the new log start
	Below    []int64           // StepMoveLogStart: bases of the segments wholly below it
	Tail     []coord.TailEntry // StepMergeTail: the entries merged, a prefix of the tail
	Segments []coord.IndexEntry
	Level    int // StepMergeSegments: the merged segment's level
	// StepClean: Segments are every segment that begins below DirtyTo; the records of [DirtyFrom,
	// DirtyTo) are the cleanable dirty section.
	DirtyFrom, DirtyTo int64
}

// Next is the step a partition's index calls for now, retention first (nothing is merged that is about
// to expire), then the tail, then segments. It is a pure function of its arguments, so that a leader
// taking over plans what its predecessor would have.
func Next(pi coord.PartitionIndex, p Policy, now time.Time) Step {
	if s, ok := retain(pi, p, now); ok {
		return s
	}
	if s, ok := mergeTail(pi, p, now); ok {
		return s
	}
	if s, ok := clean(pi, p, now); ok {
		return s
	}
	if s, ok := mergeSegments(pi, p); ok {
		return s
	}
	return Step{}
}

// entryTime is what retention ages an entry by: its newest record's timestamp, or, when its batches
// carry none, when it was committed.
func entryTime(e coord.IndexEntry, committed int64) int64 {
	if e.MaxTimestamp > 0 {
		return e.MaxTimestamp
	}
	return committed
}

// retain moves the log start past the oldest entries (segments, then tail entries, whole) whose
// newest record is older than RetentionTime, and past the oldest whose removal still leaves at least
// RetentionBytes, as Kafka deletes whole segments.
func retain(pi coord.PartitionIndex, p Policy, now time.Time) (Step, bool) {
	if p.RetentionTime < 0 && p.RetentionBytes < 0 {
		return Step{}, false
	}
	type item struct {
		e    coord.IndexEntry
		time int64
		seg  bool
	}
	var items []item
	var total int64
	for _, s := range pi.Segments {
		items = append(items, item{s, entryTime(s, s.Segment.Time), true})
		total += s.Bytes
	}
	for _, t := range pi.Tail {
		items = append(items, item{t.IndexEntry, entryTime(t.IndexEntry, t.Time), false})
		total += t.Bytes
	}
	cutoff := now.Add(-p.RetentionTime).UnixMilli()
	step := Step{Kind: StepMoveLogStart}
	for _, it := range items {
		if pi.Unstable && it.e.LastOffset >= pi.Stable {
			break // an open transaction's records are kept until it ends
		}
		expired := p.RetentionTime >= 0 && it.time > 0 && it.time < cutoff
		oversize := p.RetentionBytes >= 0 && total-it.e.Bytes >= p.RetentionBytes
		if !expired && !oversize {
			break
		}
		step.LogStart = it.e.LastOffset + 1
		total -= it.e.Bytes
		if it.seg {
			step.Below = append(step.Below, it.e.BaseOffset)
		}
	}
	return step, step.LogStart > pi.LogStart
}

// mergeTail takes a prefix of the tail, up to MergeInput bytes, once the tail holds TailEntries entries
// or TailBytes bytes, or its oldest committed entry is TailAge old.
func mergeTail(pi coord.PartitionIndex, p Policy, now time.Time) (Step, bool) {
	if len(pi.Tail) == 0 {
		return Step{}, false
	}
	var bytes int64
	for _, t := range pi.Tail {
		bytes += t.Bytes
	}
	oldest := pi.Tail[0].Time
	due := len(pi.Tail) >= p.TailEntries || bytes >= p.TailBytes ||
		(oldest > 0 && now.Sub(time.UnixMilli(oldest)) >= p.tailAge())
	if !due {
		return Step{}, false
	}
	step := Step{Kind: StepMergeTail, Level: 1}
	var n int64
	aborted := 0
	for _, t := range pi.Tail {
		a := len(coord.AbortedIn([]coord.IndexEntry{t.IndexEntry}))
		if len(step.Tail) > 0 && (n+t.Bytes > p.MergeInput || aborted+a > MaxAborted) {
			break
		}
		if pi.Unstable && t.LastOffset >= pi.Stable {
			break // segments hold only stable offsets: read_committed reads them whole
		}
		step.Tail = append(step.Tail, t)
		n += t.Bytes
		aborted += a
	}
	return step, len(step.Tail) > 0
}

// mergeSegments merges the oldest run of FanIn adjacent segments of one level — or the longest prefix
// of it, of at least two, that stays within MaxBytes and MaxSpan — into one of the next level. Segments
// are appended at the newest end and merged in runs, so levels fall from the oldest segments to the
// newest, and a run of one level is the segments between two of other levels.
func mergeSegments(pi coord.PartitionIndex, p Policy) (Step, bool) {
	segs := pi.Segments
	for i := 0; i < len(segs); {
		j := i + 1
		for j < len(segs) && segs[j].Segment.Level == segs[i].Segment.Level {
			j++
		}
		for k := i; j-k >= p.FanIn; k++ {
			if run := fitting(segs[k:k+p.FanIn], p); len(run) >= 2 {
				return Step{Kind: StepMergeSegments, Segments: run, Level: segs[k].Segment.Level + 1}, true
			}
		}
		i = j
	}
	return Step{}, false
}

// fitting is the longest prefix of run whose merge stays within MaxBytes, MaxSpan and MaxAborted.
func fitting(run []coord.IndexEntry, p Policy) []coord.IndexEntry {
	var bytes int64
	aborted := 0
	minTs, maxTs := run[0].Segment.MinTimestamp, run[0].MaxTimestamp
	for i, s := range run {
		bytes += s.Bytes
		aborted += len(s.Segment.Aborted)
		minTs, maxTs = min(minTs, s.Segment.MinTimestamp), max(maxTs, s.MaxTimestamp)
		if bytes > p.MaxBytes || aborted > MaxAborted || (minTs > 0 && time.Duration(maxTs-minTs)*time.Millisecond > p.MaxSpan) {
			return run[:i]
		}
	}
	return run
}
