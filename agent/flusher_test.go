package agent

import (
	"testing"
	"time"
)

func TestNextFlushKeepsTheCadence(t *testing.T) {
	last := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const every = 100 * time.Millisecond
	ms := func(n int) time.Time { return last.Add(time.Duration(n) * time.Millisecond) }
	for _, c := range []struct {
		first, want time.Time
	}{
		{last, ms(100)},          // appended as the previous flush was sealed: one interval
		{ms(-3), ms(100)},        // appended while it was being sealed: still one interval
		{ms(1), ms(100)},         // just after: waits almost the whole interval
		{ms(99), ms(100)},        // just before the tick: goes with it, not 100 ms later
		{ms(100), ms(100)},       // on the tick
		{ms(101), ms(200)},       // just past it: the next tick
		{ms(1_234), ms(1_300)},   // after a quiet spell: still on the cadence
		{ms(10_000), ms(10_000)}, // far later, on a tick
	} {
		if got := nextFlush(last, c.first, every); !got.Equal(c.want) {
			t.Errorf("nextFlush(last, last%+v, %v) = last%+v, want last%+v", c.first.Sub(last), every, got.Sub(last), c.want.Sub(last))
		}
		// Never within one interval of the previous flush; never more than one interval after the
		// append arrived, or after the previous flush when it arrived while that one was sealed.
		got := nextFlush(last, c.first, every)
		if from := later(c.first, last); got.Sub(from) > every || got.Sub(last) < every {
			t.Errorf("first at last%+v: due at last%+v", c.first.Sub(last), got.Sub(last))
		}
	}
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// An agent counts as saturated (its maintenance defers the tail merges that can wait) while its flushes
// fill up to FlushBytes, and not when the flush interval seals them.
func TestFlusherSaturatedWhenFlushesFillUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		interval  time.Duration
		bytes     int64
		saturated bool
	}{
		{"sealed by size", time.Hour, 1, true},
		{"sealed by the interval", 5 * time.Millisecond, 64 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cluster := newTestCluster(t)
			a := cluster.agent("a", func(c *Config) { c.FlushInterval, c.FlushBytes = tc.interval, tc.bytes })
			createTopic(t, kgoClient(t, nil, a), "t", 2, nil)
			produceN(t, kgoClient(t, nil, a), "t", "v", 20)
			now := time.Now()
			if got := a.flusher.saturated(now); got != tc.saturated {
				t.Fatalf("saturated after producing = %v, want %v", got, tc.saturated)
			}
			if a.flusher.saturated(now.Add(saturatedHold)) {
				t.Fatalf("still saturated %v later", saturatedHold)
			}
		})
	}
}
