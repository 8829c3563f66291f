package main

import (
	"math"
	"testing"
	"time"
)

// sentAt is one record of a test history: sent to partition, acknowledged at offset (or not: outcome),
// with timestamp tsMs.
type sentAt struct {
	partition int32
	offset    int64
	tsMs      int64
	outcome   uint8
}

// readAt is one record the consumer returned: record seq at partition and offset.
type readAt struct {
	partition int32
	offset    int64
	seq       int64
}

// history builds a ledger of sent records (sequence numbers in order) as the producer would.
func history(t *testing.T, sent []sentAt) *ledger {
	t.Helper()
	l := &ledger{}
	for _, s := range sent {
		seq := l.add(s.partition, time.UnixMilli(s.tsMs))
		switch s.outcome {
		case outcomeAcked:
			l.acked(seq, s.offset)
		case outcomeFailed:
			l.failed(seq)
		}
	}
	return l
}

// replay feeds reads to a checker of the ledger and finishes with cutoffMs.
func replay(l *ledger, reads []readAt, cutoffMs int64) checkResult {
	c := newChecker(l)
	for _, r := range reads {
		k, v := encodeRecord(r.seq, 64)
		c.observe(r.partition, r.offset, k, v)
	}
	return c.finish(cutoffMs)
}

// fourAcked is partition 0, offsets 0-3, records 0-3, timestamps 1000-4000.
func fourAcked() []sentAt {
	return []sentAt{{0, 0, 1000, outcomeAcked}, {0, 1, 2000, outcomeAcked}, {0, 2, 3000, outcomeAcked}, {0, 3, 4000, outcomeAcked}}
}

func inOrder(seqs ...int64) []readAt {
	var out []readAt
	for i, s := range seqs {
		out = append(out, readAt{0, int64(i), s})
	}
	return out
}

func TestCheckHistories(t *testing.T) {
	t.Parallel()
	const all = math.MinInt64
	for _, tc := range []struct {
		name   string
		sent   []sentAt
		reads  []readAt
		cutoff int64
		want   map[string]int64 // anomalies by kind; absent kinds must be 0
		check  func(t *testing.T, r checkResult)
	}{
		{name: "clean", sent: fourAcked(), reads: inOrder(0, 1, 2, 3), cutoff: all,
			check: func(t *testing.T, r checkResult) { expect(t, "required", r.Required, 4); expect(t, "read", r.Read, 4) }},
		{name: "two partitions interleaved", cutoff: all,
			sent:  []sentAt{{0, 0, 1, outcomeAcked}, {1, 0, 2, outcomeAcked}, {0, 1, 3, outcomeAcked}, {1, 1, 4, outcomeAcked}},
			reads: []readAt{{1, 0, 1}, {0, 0, 0}, {1, 1, 3}, {0, 1, 2}}},
		{name: "duplicate: a record written twice", sent: fourAcked(), cutoff: all,
			reads: []readAt{{0, 0, 0}, {0, 1, 1}, {0, 2, 2}, {0, 3, 3}, {0, 4, 3}},
			want:  map[string]int64{anomalyDuplicate: 1, anomalyMoved: 1}},
		{name: "duplicate: a record served twice", sent: fourAcked(), cutoff: all,
			reads: []readAt{{0, 0, 0}, {0, 1, 1}, {0, 1, 1}, {0, 2, 2}, {0, 3, 3}},
			want:  map[string]int64{anomalyDuplicate: 1, anomalyOrder: 1}},
		{name: "gap", sent: fourAcked(), cutoff: all,
			reads: []readAt{{0, 0, 0}, {0, 1, 1}, {0, 3, 3}},
			want:  map[string]int64{anomalyGap: 1, anomalyLost: 1}},
		{name: "gap over a record inside retention", sent: fourAcked(), cutoff: 2500,
			reads: []readAt{{0, 0, 0}, {0, 3, 3}},
			want:  map[string]int64{anomalyGap: 1, anomalyLost: 1},
			check: func(t *testing.T, r checkResult) { expect(t, "gone", r.Gone, 1) }},
		{name: "gap over no acknowledged record, without retention", cutoff: all,
			sent:  []sentAt{{0, 0, 1, outcomeAcked}, {0, -1, 2, outcomeFailed}, {0, 2, 3, outcomeAcked}},
			reads: []readAt{{0, 0, 0}, {0, 2, 2}},
			want:  map[string]int64{anomalyGap: 1}},
		{name: "skip past a log start retention moved", sent: fourAcked(), cutoff: 3500,
			reads: []readAt{{0, 0, 0}, {0, 3, 3}},
			check: func(t *testing.T, r checkResult) {
				expect(t, "skipped gaps", r.SkippedGaps, 1)
				expect(t, "gone", r.Gone, 2)
				expect(t, "kept", r.KeptOutside, 1)
			}},
		{name: "reorder", sent: fourAcked(), cutoff: all,
			reads: []readAt{{0, 0, 0}, {0, 2, 2}, {0, 1, 1}, {0, 3, 3}},
			want:  map[string]int64{anomalyGap: 1, anomalyOrder: 1, anomalyMoved: 0}},
		{name: "lost inside retention", sent: fourAcked(), cutoff: 2500,
			reads: inOrder(0, 1, 2),
			want:  map[string]int64{anomalyLost: 1},
			check: func(t *testing.T, r checkResult) { expect(t, "required", r.Required, 2) }},
		{name: "gone outside retention", sent: fourAcked(), cutoff: 2500,
			reads: []readAt{{0, 2, 2}, {0, 3, 3}},
			check: func(t *testing.T, r checkResult) { expect(t, "gone", r.Gone, 2); expect(t, "required", r.Required, 2) }},
		{name: "kept outside retention", sent: fourAcked(), cutoff: 2500,
			reads: inOrder(0, 1, 2, 3),
			check: func(t *testing.T, r checkResult) { expect(t, "kept", r.KeptOutside, 2); expect(t, "gone", r.Gone, 0) }},
		{name: "moved to another offset", sent: fourAcked(), cutoff: all,
			reads: inOrder(0, 1, 3, 2),
			want:  map[string]int64{anomalyMoved: 2}},
		{name: "moved to another partition", cutoff: all,
			sent:  []sentAt{{0, 0, 1, outcomeAcked}, {1, 0, 2, outcomeAcked}},
			reads: []readAt{{0, 0, 0}, {2, 0, 1}},
			want:  map[string]int64{anomalyMoved: 1, anomalyLost: 0}},
		{name: "failed or unanswered produce read back", cutoff: all,
			sent:  []sentAt{{0, 0, 1, outcomeAcked}, {0, -1, 2, outcomeFailed}, {0, -1, 3, outcomePending}},
			reads: inOrder(0, 1, 2),
			check: func(t *testing.T, r checkResult) {
				expect(t, "unacked read", r.UnackedRead, 2)
				expect(t, "failed", r.Failed, 1)
				expect(t, "unanswered", r.Unanswered, 1)
			}},
		{name: "failed produce not read", cutoff: all,
			sent:  []sentAt{{0, 0, 1, outcomeAcked}, {0, -1, 2, outcomeFailed}},
			reads: inOrder(0)},
		{name: "record never sent", sent: fourAcked()[:1], cutoff: all,
			reads: inOrder(0, 7),
			want:  map[string]int64{anomalyForeign: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := replay(history(t, tc.sent), tc.reads, tc.cutoff)
			for _, k := range anomalyKinds {
				if got, want := r.Anomalies[k], tc.want[k]; got != want {
					t.Errorf("%s anomalies: got %d, want %d (examples: %v)", k, got, want, r.Examples)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}
}

func expect(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %d, want %d", what, got, want)
	}
}

func TestCheckForeignValue(t *testing.T) {
	t.Parallel()
	c := newChecker(history(t, fourAcked()))
	k, v := encodeRecord(1, 64)
	v[40] ^= 1 // the value no longer matches its key
	c.observe(0, 0, []byte("0"), v[:10])
	c.observe(0, 1, k, v)
	c.observe(0, 2, []byte("x"), v)
	r := c.finish(math.MinInt64)
	expect(t, "foreign", r.Anomalies[anomalyForeign], 3)
	expect(t, "lost", r.Anomalies[anomalyLost], 4)
}

func TestCheckIncomplete(t *testing.T) {
	t.Parallel()
	c := newChecker(history(t, fourAcked()))
	k, v := encodeRecord(0, 64)
	c.observe(0, 0, k, v)
	c.incomplete(0, 1, 4)
	r := c.finish(math.MinInt64)
	expect(t, "incomplete", r.Anomalies[anomalyIncomplete], 1)
	expect(t, "lost", r.Anomalies[anomalyLost], 3)
	if got, want := r.summary(), "3 lost, 1 incomplete"; got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}

func TestCheckExamplesBounded(t *testing.T) {
	t.Parallel()
	var sent []sentAt
	for i := range 3 * maxExamples {
		sent = append(sent, sentAt{0, int64(i), 1, outcomeAcked})
	}
	r := replay(history(t, sent), nil, math.MinInt64)
	expect(t, "lost", r.Anomalies[anomalyLost], 3*maxExamples)
	if len(r.Examples) != maxExamples {
		t.Errorf("%d examples kept, want %d", len(r.Examples), maxExamples)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	t.Parallel()
	for _, seq := range []int64{0, 1, 99, 1 << 40} {
		for _, size := range []int{minRecordSize, 200, 1000} {
			k, v := encodeRecord(seq, size)
			if len(v) != size {
				t.Fatalf("seq %d: value of %d bytes, want %d", seq, len(v), size)
			}
			got, err := decodeRecord(k, v)
			if err != nil || got != seq {
				t.Fatalf("seq %d size %d: decoded %d, %v", seq, size, got, err)
			}
		}
	}
	_, a := encodeRecord(1, 64)
	_, b := encodeRecord(2, 64)
	if string(a[minRecordSize:]) == string(b[minRecordSize:]) {
		t.Error("records 1 and 2 have the same filler: a value served under the other's key would pass")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	k, v := encodeRecord(42, 64)
	f.Add(k, v)
	f.Add([]byte("-1"), []byte("00000000000000000000"))
	f.Fuzz(func(t *testing.T, key, value []byte) {
		seq, err := decodeRecord(key, value)
		if err != nil {
			return
		}
		k2, v2 := encodeRecord(seq, len(value))
		if string(k2) != string(key) || string(v2) != string(value) {
			t.Fatalf("decoded %d from %q/%q, which encodes as %q/%q", seq, key, value, k2, v2)
		}
	})
}
