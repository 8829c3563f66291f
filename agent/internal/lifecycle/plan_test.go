package lifecycle

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// model is a partition's index as etcd would hold it after each step: what Next plans from, and the
// result of applying its steps the way the agent's writes change the view.
type model struct {
	pi      coord.PartitionIndex
	objects int // names made so far
}

func (m *model) object() string {
	m.objects++
	return fmt.Sprintf("part/%d", m.objects)
}

// append commits an entry of n offsets and size bytes, its newest record at ts.
func (m *model) append(n, size int64, ts time.Time) {
	e := coord.IndexEntry{BaseOffset: m.pi.HighWatermark, LastOffset: m.pi.HighWatermark + n - 1, Bytes: size,
		MaxTimestamp: ts.UnixMilli(), Extents: []coord.Extent{{Object: "seg/x", Len: int32(size)}}}
	m.pi.Tail = append(m.pi.Tail, coord.TailEntry{IndexEntry: e, Time: ts.UnixMilli()})
	m.pi.HighWatermark += n
}

// apply changes the index as the step's etcd write would, checking that the step is one the agent can
// carry out: whole entries, adjacent segments of one level, a log start that only moves up.
func (m *model) apply(t *testing.T, s Step) {
	t.Helper()
	switch s.Kind {
	case StepMoveLogStart:
		if s.LogStart <= m.pi.LogStart || s.LogStart > m.pi.HighWatermark {
			t.Fatalf("log start %d → %d (hwm %d)", m.pi.LogStart, s.LogStart, m.pi.HighWatermark)
		}
		for _, b := range s.Below {
			i := slices.IndexFunc(m.pi.Segments, func(e coord.IndexEntry) bool { return e.BaseOffset == b })
			if i < 0 || m.pi.Segments[i].LastOffset >= s.LogStart {
				t.Fatalf("deletes segment %d, which is not wholly below %d", b, s.LogStart)
			}
		}
		m.pi.LogStart = s.LogStart
		m.pi.Segments = slices.DeleteFunc(m.pi.Segments, func(e coord.IndexEntry) bool { return e.LastOffset < s.LogStart })
		m.pi.Tail = slices.DeleteFunc(m.pi.Tail, func(e coord.TailEntry) bool { return e.LastOffset < s.LogStart })
	case StepMergeTail:
		if len(s.Tail) == 0 || s.Tail[0].BaseOffset != m.pi.Tail[0].BaseOffset {
			t.Fatalf("a tail merge of %d entries, not a prefix of the tail", len(s.Tail))
		}
		seg := segOf(m.object(), 1, s.Tail[0].BaseOffset, s.Tail[len(s.Tail)-1].LastOffset)
		for _, e := range s.Tail {
			seg.Bytes += e.Bytes
			seg.MaxTimestamp = max(seg.MaxTimestamp, e.MaxTimestamp)
			if seg.Segment.MinTimestamp == 0 || e.MaxTimestamp < seg.Segment.MinTimestamp {
				seg.Segment.MinTimestamp = e.MaxTimestamp
			}
		}
		m.pi.Tail = m.pi.Tail[len(s.Tail):]
		m.pi.Segments = append(m.pi.Segments, seg)
	case StepMergeSegments:
		i := slices.IndexFunc(m.pi.Segments, func(e coord.IndexEntry) bool { return e.BaseOffset == s.Segments[0].BaseOffset })
		if i < 0 || len(s.Segments) < 2 {
			t.Fatalf("merge of %d segments from %d", len(s.Segments), s.Segments[0].BaseOffset)
		}
		seg := segOf(m.object(), s.Level, s.Segments[0].BaseOffset, s.Segments[len(s.Segments)-1].LastOffset)
		seg.Segment.MinTimestamp = s.Segments[0].Segment.MinTimestamp
		for j, e := range s.Segments {
			if m.pi.Segments[i+j].BaseOffset != e.BaseOffset || e.Segment.Level != s.Level-1 {
				t.Fatalf("merge of segments that are not adjacent, or not of level %d", s.Level-1)
			}
			seg.Bytes += e.Bytes
			seg.MaxTimestamp = max(seg.MaxTimestamp, e.MaxTimestamp)
		}
		m.pi.Segments = slices.Replace(m.pi.Segments, i, i+len(s.Segments), seg)
	}
}

func segOf(obj string, level int, base, last int64) coord.IndexEntry {
	return coord.IndexEntry{BaseOffset: base, LastOffset: last, Segment: &coord.Segment{Object: obj, Level: level}}
}

// check verifies that the index covers every offset from the log start to the high watermark exactly
// once, in order.
func (m *model) check(t *testing.T) {
	t.Helper()
	next := m.pi.LogStart
	first := true
	for _, e := range append(slices.Clone(m.pi.Segments), tailEntries(m.pi.Tail)...) {
		if (first && e.BaseOffset > next) || (!first && e.BaseOffset != next) || e.LastOffset < e.BaseOffset {
			t.Fatalf("entry [%d, %d] where %d was expected (log start %d)", e.BaseOffset, e.LastOffset, next, m.pi.LogStart)
		}
		next, first = e.LastOffset+1, false
	}
	if next != m.pi.HighWatermark && !(first && next <= m.pi.HighWatermark) {
		t.Fatalf("entries end at %d, high watermark %d", next, m.pi.HighWatermark)
	}
}

func tailEntries(tail []coord.TailEntry) []coord.IndexEntry {
	out := make([]coord.IndexEntry, len(tail))
	for i, t := range tail {
		out[i] = t.IndexEntry
	}
	return out
}

// maxLevels bounds the levels below segment.bytes: a first segment of a few hundred bytes reaches 1 GiB
// in 7 merges of 8.
const maxLevels = 8

// keyBound is the most keys (segments + tail entries) a partition holding retained bytes may have: the
// tail, FanIn-1 segments per level, and full segments, each more than half of MaxBytes (two that do not
// fit one are never both under half).
func keyBound(p Policy, retained int64) int {
	return p.TailEntries + (p.FanIn-1)*maxLevels + int(2*retained/p.MaxBytes) + 1
}

// run drives a partition for steps appends of random size at random intervals, running maintenance to
// quiescence after each, checks the keys against keyBound, and returns the most it held at once.
func run(t *testing.T, rng *rand.Rand, p Policy, steps int, gap time.Duration, maxSize int64) int {
	t.Helper()
	var m model
	now := time.Unix(1_700_000_000, 0)
	most := 0
	for range steps {
		now = now.Add(time.Duration(rng.Int64N(int64(gap))))
		m.append(1+rng.Int64N(100), 1+rng.Int64N(maxSize), now)
		for range 1000 {
			s := Next(m.pi, p, now)
			if s.Kind == StepNone {
				break
			}
			m.apply(t, s)
			m.check(t)
		}
		if s := Next(m.pi, p, now); s.Kind != StepNone {
			t.Fatalf("maintenance did not settle: %+v", s)
		}
		keys := len(m.pi.Segments) + len(m.pi.Tail)
		if keys > keyBound(p, m.bytes()) {
			t.Fatalf("%d keys holding %d bytes, more than the bound %d", keys, m.bytes(), keyBound(p, m.bytes()))
		}
		most = max(most, keys)
		if p.RetentionTime >= 0 {
			for _, s := range m.pi.Segments {
				if s.MaxTimestamp < now.Add(-p.RetentionTime).UnixMilli() {
					t.Fatalf("segment [%d, %d] outlived retention", s.BaseOffset, s.LastOffset)
				}
			}
		}
	}
	return most
}

// Over long histories of small and large appends, the index stays contiguous and its keys bounded by
// the levels and what is retained (keyBound), whatever the history's length: under 100 for a trickle
// kept forever and for a busy partition with minutes of retention.
func TestPlannerKeepsKeysBounded(t *testing.T) {
	t.Parallel()
	small := DefaultPolicy()
	small.MaxBytes = 64 << 20
	for _, tc := range []struct {
		name    string
		p       Policy
		steps   int
		gap     time.Duration
		maxSize int64
		bound   int
	}{
		{"trickle, kept forever", DefaultPolicy(), 20000, 10 * time.Second, 2000, 100},
		{"busy, small segments, kept forever", small, 20000, 100 * time.Millisecond, 1 << 20, 400},
		{"busy, five minutes' retention", withRetention(DefaultPolicy(), 5*time.Minute, -1), 20000, 100 * time.Millisecond, 1 << 20, 100},
		{"bytes retention", withRetention(small, -1, 256<<20), 20000, 100 * time.Millisecond, 1 << 20, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(1, uint64(tc.steps)))
			most := run(t, rng, tc.p, tc.steps, tc.gap, tc.maxSize)
			t.Logf("up to %d keys", most)
			if most > tc.bound {
				t.Fatalf("up to %d keys, want at most %d", most, tc.bound)
			}
		})
	}
}

func (m *model) bytes() int64 {
	var n int64
	for _, s := range m.pi.Segments {
		n += s.Bytes
	}
	for _, e := range m.pi.Tail {
		n += e.Bytes
	}
	return n
}

func withRetention(p Policy, d time.Duration, bytes int64) Policy {
	p.RetentionTime, p.RetentionBytes = d, bytes
	return p
}

// Retention moves the log start past whole entries only, and never past one that is still young;
// bytes retention keeps at least retention.bytes.
func TestRetention(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	var m model
	for i := range 10 {
		m.append(10, 100, now.Add(time.Duration(i-10)*time.Minute))
	}
	m.apply(t, Next(m.pi, withRetention(DefaultPolicy(), -1, -1), now)) // the tail is due by age: merged
	p := withRetention(DefaultPolicy(), 5*time.Minute+30*time.Second, -1)
	s := Next(m.pi, p, now)
	if s.Kind != StepNone {
		t.Fatalf("one segment holding young records must not expire: %+v", s)
	}
	m = model{}
	for i := range 10 {
		m.append(10, 100, now.Add(time.Duration(i-10)*time.Minute))
	}
	s = Next(m.pi, p, now)
	if s.Kind != StepMoveLogStart || s.LogStart != 50 {
		t.Fatalf("retention of 5.5 minutes over entries a minute apart: %+v, want the log start at 50", s)
	}
	s = Next(m.pi, withRetention(DefaultPolicy(), -1, 450), now)
	if s.Kind != StepMoveLogStart || s.LogStart != 50 {
		t.Fatalf("retention of 450 bytes over 10 entries of 100: %+v, want the log start at 50 (500 bytes kept)", s)
	}
}

// An open transaction holds merges and retention below the last stable offset: segments hold only
// stable offsets (read_committed reads them whole) and an open transaction's records are kept until
// it ends.
func TestPlanHeldAtLastStableOffset(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000)
	var m model
	for range 3 {
		m.append(10, 100, now.Add(-time.Hour))
	}
	m.pi.Unstable, m.pi.Stable = true, 15
	p := DefaultPolicy()
	p.TailEntries = 1
	if s := Next(m.pi, p, now); s.Kind != StepMergeTail || len(s.Tail) != 1 || s.Tail[0].LastOffset != 9 {
		t.Fatalf("merge with a transaction open at 15: %+v", s)
	}
	p.RetentionTime = time.Minute
	if s := Next(m.pi, p, now); s.Kind != StepMoveLogStart || s.LogStart != 10 {
		t.Fatalf("retention with a transaction open at 15: %+v", s)
	}
	m.pi.Stable = 0
	p.RetentionTime = -1
	if s := Next(m.pi, p, now); s.Kind == StepMergeTail {
		t.Fatalf("merge with a transaction open at 0: %+v", s)
	}
	m.pi.Unstable, m.pi.Stable = false, 30
	if s := Next(m.pi, p, now); s.Kind != StepMergeTail || len(s.Tail) != 3 {
		t.Fatalf("merge with no transaction open: %+v", s)
	}
}

// A merge puts at most MaxAborted aborted transactions in one segment's key, however many a run of
// entries holds: the key stays small for etcd, and the partition keeps more, smaller segments.
func TestMergesBoundAbortedPerSegment(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000)
	abortEntry := func(off int64) coord.TailEntry {
		return coord.TailEntry{IndexEntry: coord.IndexEntry{BaseOffset: off, LastOffset: off, Bytes: 80,
			Marker: &coord.TxnMarker{ProducerID: off, FirstOffset: off - 1}}, Time: now.UnixMilli()}
	}
	var pi coord.PartitionIndex
	for off := int64(1); off <= 2*MaxAborted+100; off += 2 {
		pi.Tail = append(pi.Tail, abortEntry(off))
	}
	s := Next(pi, DefaultPolicy(), now)
	if s.Kind != StepMergeTail || len(s.Tail) != MaxAborted {
		t.Fatalf("tail of %d abort markers: step %v of %d entries, want a tail merge of %d", len(pi.Tail), s.Kind, len(s.Tail), MaxAborted)
	}

	// One entry is merged whatever it holds.
	big := abortEntry(1)
	big.Segment = &coord.Segment{Aborted: make([]coord.AbortedTxn, MaxAborted+1)}
	pi.Tail = []coord.TailEntry{big, abortEntry(3)}
	due := DefaultPolicy()
	due.TailEntries = 2
	if s := Next(pi, due, now); s.Kind != StepMergeTail || len(s.Tail) != 1 {
		t.Fatalf("an entry of %d aborted transactions: step %v of %d entries, want it merged alone", MaxAborted+1, s.Kind, len(s.Tail))
	}

	segments := func(aborted int) []coord.IndexEntry {
		var out []coord.IndexEntry
		for i := range int64(DefaultFanIn) {
			e := segOf("seg/x", 1, i*10, i*10+9)
			e.Bytes, e.Segment.Aborted = 1000, make([]coord.AbortedTxn, aborted)
			out = append(out, e)
		}
		return out
	}
	pi = coord.PartitionIndex{Segments: segments(MaxAborted / 3)}
	if s := Next(pi, DefaultPolicy(), now); s.Kind != StepMergeSegments || len(s.Segments) != 3 {
		t.Fatalf("segments of %d aborted transactions each: step %v of %d segments, want 3 merged", MaxAborted/3, s.Kind, len(s.Segments))
	}
	pi = coord.PartitionIndex{Segments: segments(1)}
	if s := Next(pi, DefaultPolicy(), now); s.Kind != StepMergeSegments || len(s.Segments) != DefaultFanIn {
		t.Fatalf("segments of 1 aborted transaction each: step %v of %d segments, want all %d merged", s.Kind, len(s.Segments), DefaultFanIn)
	}
}

// A busy agent's policy defers only the entry trigger: bytes and age still make a tail due.
func TestBusyPolicyDefersOnlyTheEntryTrigger(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000)
	p := DefaultPolicy()
	due := func(p Policy, entries int, size int64, age time.Duration) bool {
		var m model
		for range entries {
			m.append(1, size, now.Add(-age))
		}
		return Next(m.pi, p, now).Kind == StepMergeTail
	}
	if !due(p, p.TailEntries, 100, 0) || due(p.Busy(), p.TailEntries, 100, 0) {
		t.Fatalf("%d small entries: due %v, busy %v; want due only when not busy", p.TailEntries, due(p, p.TailEntries, 100, 0), due(p.Busy(), p.TailEntries, 100, 0))
	}
	if !due(p.Busy(), p.TailEntries*BusyTailFactor, 100, 0) {
		t.Fatalf("busy, %d entries: not due", p.TailEntries*BusyTailFactor)
	}
	if !due(p.Busy(), 2, p.TailBytes/2, 0) || !due(p.Busy(), 1, 100, p.TailAge) {
		t.Fatal("busy: a tail due by its bytes or its age was not merged")
	}
}
