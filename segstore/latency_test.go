package segstore

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestLatencyContract(t *testing.T) {
	fast := LatencyProfile{Name: "fast", Put: LatencyDist{P50: 100 * time.Microsecond, P99: time.Millisecond},
		Get: LatencyDist{P50: 50 * time.Microsecond, P99: 500 * time.Microsecond}}
	testStoreContract(t, func(t *testing.T) Store { return NewLatency(NewMemory(), fast, 1) })
}

func TestProfiles(t *testing.T) {
	for _, name := range ProfileNames {
		p, err := Profile(name)
		if err != nil || p.Name != name {
			t.Errorf("Profile(%q) = %+v, %v", name, p, err)
		}
	}
	if _, err := Profile("glacier"); err == nil {
		t.Error("Profile(glacier) did not fail")
	}
	m := NewMemory()
	none, _ := Profile(ProfileNone)
	if WithProfile(m, none, 1) != Store(m) {
		t.Error("WithProfile(none) wrapped the store")
	}
	std, _ := Profile(ProfileStandard)
	if _, ok := WithProfile(m, std, 1).(*Latency); !ok {
		t.Error("WithProfile(standard) did not wrap the store")
	}
}

// TestLatencyDistQuantiles checks that the log-normal draws have the profile's median and p99.
func TestLatencyDistQuantiles(t *testing.T) {
	for _, name := range []string{ProfileStandard, ProfileExpress} {
		p, _ := Profile(name)
		for op, d := range map[string]LatencyDist{"put": p.Put, "get": p.Get} {
			rng := rand.New(rand.NewPCG(7, 7))
			draws := make([]time.Duration, 200_000)
			for i := range draws {
				draws[i] = d.sample(rng.NormFloat64())
			}
			slices.Sort(draws)
			p50, p99 := draws[len(draws)/2], draws[len(draws)*99/100]
			if !near(p50, d.P50, 0.03) || !near(p99, d.P99, 0.05) {
				t.Errorf("%s %s: drawn p50 %v p99 %v, want %v and %v", name, op, p50, p99, d.P50, d.P99)
			}
		}
	}
}

func near(got, want time.Duration, tol float64) bool {
	return float64(got) >= float64(want)*(1-tol) && float64(got) <= float64(want)*(1+tol)
}

// TestLatencySeeded checks that one seed always draws the same sequence, and another seed another.
func TestLatencySeeded(t *testing.T) {
	std, _ := Profile(ProfileStandard)
	seq := func(seed uint64) []time.Duration {
		l := NewLatency(NewMemory(), std, seed)
		var out []time.Duration
		for range 100 {
			lat, slow, backoff := l.draw(std.Put)
			out = append(out, lat, backoff)
			if slow {
				out = append(out, -1)
			}
		}
		return out
	}
	if !slices.Equal(seq(42), seq(42)) {
		t.Error("the same seed drew different sequences")
	}
	if slices.Equal(seq(42), seq(43)) {
		t.Error("different seeds drew the same sequence")
	}
}

// TestLatencyHoldsRequests checks that a request takes the drawn latency, with the inner store's own
// time counted in it rather than added.
func TestLatencyHoldsRequests(t *testing.T) {
	ctx := context.Background()
	fixed := LatencyProfile{Name: "fixed", Put: LatencyDist{P50: 80 * time.Millisecond}, Get: LatencyDist{P50: 40 * time.Millisecond}}
	slow := NewFaulty(NewMemory())
	slow.SetFault(OpPut, func(string) error { time.Sleep(60 * time.Millisecond); return nil })
	l := NewLatency(slow, fixed, 1)
	start := time.Now()
	if err := l.Put(ctx, "seg/a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	// Added, the two would take 140ms.
	if took := time.Since(start); took < 80*time.Millisecond || took > 130*time.Millisecond {
		t.Errorf("Put took %v, want about 80ms (the inner store's 60ms inside it)", took)
	}
	start = time.Now()
	if b, err := l.GetRange(ctx, "seg/a", 0, 1); err != nil || string(b) != "x" {
		t.Fatalf("GetRange = %q, %v", b, err)
	}
	if took := time.Since(start); took < 40*time.Millisecond {
		t.Errorf("GetRange took %v, want at least 40ms", took)
	}
}

func TestLatencySlowDown(t *testing.T) {
	ctx := context.Background()
	inner := NewFaulty(NewMemory())
	var reached atomic.Int32
	inner.SetFault(OpPut, func(string) error { reached.Add(1); return nil })

	// Every attempt refused: the caller sees SlowDown after the last attempt, and nothing was stored.
	always := LatencyProfile{Name: "throttled", SlowDown: 1, Attempts: 3, MaxBackoff: time.Millisecond}
	if err := NewLatency(inner, always, 1).Put(ctx, "seg/a", []byte("x")); !errors.Is(err, ErrSlowDown) {
		t.Fatalf("Put = %v, want ErrSlowDown", err)
	}
	if reached.Load() != 0 {
		t.Fatalf("a refused Put reached the store %d times", reached.Load())
	}

	// Half refused, retried as the SDK would: every Put lands, once.
	half := LatencyProfile{Name: "half", SlowDown: 0.5, Attempts: 30, MaxBackoff: time.Millisecond}
	l := NewLatency(inner, half, 1)
	for i := range 20 {
		if err := l.Put(ctx, "seg/b"+string(rune('a'+i)), []byte("x")); err != nil {
			t.Fatalf("Put %d = %v", i, err)
		}
	}
	if reached.Load() != 20 {
		t.Fatalf("20 Puts reached the store %d times, want 20", reached.Load())
	}

	// One attempt: a SlowDown is surfaced at once.
	once := LatencyProfile{Name: "once", SlowDown: 1, Attempts: 1, MaxBackoff: time.Hour}
	start := time.Now()
	if _, err := NewLatency(inner, once, 1).GetRange(ctx, "seg/ba", 0, 1); !errors.Is(err, ErrSlowDown) {
		t.Fatalf("GetRange = %v, want ErrSlowDown", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("a single attempt waited for a backoff")
	}
}

func TestLatencyCancel(t *testing.T) {
	slowest := LatencyProfile{Name: "slow", Put: LatencyDist{P50: time.Hour}, Get: LatencyDist{P50: time.Hour}}
	l := NewLatency(NewMemory(), slowest, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := l.Put(ctx, "seg/a", []byte("x")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put = %v, want the context's error", err)
	}
	if _, err := l.Get(ctx, "seg/a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Get = %v, want the context's error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("a cancelled request kept waiting")
	}
}

// TestLatencyPutReaderAttempts: as the S3 store, a streamed put is retried after a SlowDown only
// when its reader can seek. The attempts are counted by the draws they took from the seeded
// generator.
func TestLatencyPutReaderAttempts(t *testing.T) {
	ctx := context.Background()
	always := LatencyProfile{Name: "throttled", SlowDown: 1, Attempts: 3, MaxBackoff: time.Millisecond}
	drawsAfter := func(put func(l *Latency) error) int {
		l := NewLatency(NewMemory(), always, 9)
		if err := put(l); !errors.Is(err, ErrSlowDown) {
			t.Fatalf("PutReader = %v, want ErrSlowDown", err)
		}
		_, _, next := l.draw(always.Put)
		ref := NewLatency(NewMemory(), always, 9)
		for n := 0; n < 10; n++ {
			if _, _, backoff := ref.draw(always.Put); backoff == next {
				return n
			}
		}
		t.Fatal("the wrapper's next draw is not among the first ten of its seed")
		return 0
	}
	if n := drawsAfter(func(l *Latency) error {
		return l.PutReader(ctx, "part/a", 1, unseekable{strings.NewReader("x")})
	}); n != 1 {
		t.Errorf("an unseekable PutReader made %d attempts, want 1", n)
	}
	if n := drawsAfter(func(l *Latency) error { return l.PutReader(ctx, "part/a", 1, strings.NewReader("x")) }); n != 3 {
		t.Errorf("a seekable PutReader made %d attempts, want 3", n)
	}
}
