package segstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
)

// ErrSlowDown is S3's 503 SlowDown as the latency wrapper simulates it: the request was refused before
// the store did anything, and may be retried. It reaches the caller only when every attempt of a
// request drew it (see LatencyProfile.Attempts).
var ErrSlowDown = errors.New("segstore: 503 SlowDown (simulated): reduce your request rate")

// Latency profile names, for flags.
const (
	ProfileNone     = "none"
	ProfileStandard = "standard"
	ProfileExpress  = "express"
)

// ProfileNames lists the built-in profiles, in the order a flag's help shows them.
var ProfileNames = []string{ProfileNone, ProfileStandard, ProfileExpress}

// LatencyDist is a request latency distribution, log-normal from its median and 99th percentile:
// what S3's latency looks like, a tight body and a long tail. Zero P50 means no added latency.
type LatencyDist struct {
	P50, P99 time.Duration
}

// sample draws one latency; z is a standard normal draw.
func (d LatencyDist) sample(z float64) time.Duration {
	if d.P50 <= 0 {
		return 0
	}
	sigma := 0.0
	if d.P99 > d.P50 {
		sigma = math.Log(float64(d.P99)/float64(d.P50)) / 2.3263478740408408 // z of the 99th percentile
	}
	return time.Duration(float64(d.P50) * math.Exp(sigma*z))
}

// LatencyProfile describes a simulated object store: how long requests take and how often S3 pushes
// back. Put applies to Put, PutReader and Delete; Get to Get, GetRange, List, ListObjects and Check.
type LatencyProfile struct {
	Name string
	Put  LatencyDist
	Get  LatencyDist
	// SlowDown is the probability that one attempt of a request is answered 503 SlowDown.
	SlowDown float64
	// Attempts per request: a SlowDown is retried, as the AWS SDK does, up to Attempts in all (the S3
	// store's SDK client makes 3); only the last one's SlowDown reaches the caller. 1 surfaces every
	// SlowDown at once; 0 means 1.
	Attempts int
	// MaxBackoff bounds the wait before a retry: uniform in [0, MaxBackoff), the SDK's jitter.
	MaxBackoff time.Duration
}

// Profile returns the built-in profile name:
//
//   - none: no added latency and no errors, the store as it is;
//   - standard: S3 Standard in one region, PUT p50 30 ms / p99 150 ms, GET p50 15 ms / p99 60 ms, one
//     attempt in 500 answered SlowDown and retried as the S3 store's SDK client does (3 attempts, up
//     to 1 s of jittered backoff);
//   - express: S3 Express One Zone, PUT p50 5 ms / p99 15 ms, GET p50 4 ms / p99 10 ms, no SlowDown.
//
// The latencies are the whole request as the client sees it; the inner store's own time counts
// towards them (see NewLatency).
func Profile(name string) (LatencyProfile, error) {
	switch name {
	case ProfileNone, "":
		return LatencyProfile{Name: ProfileNone}, nil
	case ProfileStandard:
		return LatencyProfile{Name: name,
			Put:      LatencyDist{P50: 30 * time.Millisecond, P99: 150 * time.Millisecond},
			Get:      LatencyDist{P50: 15 * time.Millisecond, P99: 60 * time.Millisecond},
			SlowDown: 0.002, Attempts: s3MaxAttempts, MaxBackoff: s3MaxBackoff,
		}, nil
	case ProfileExpress:
		return LatencyProfile{Name: name,
			Put: LatencyDist{P50: 5 * time.Millisecond, P99: 15 * time.Millisecond},
			Get: LatencyDist{P50: 4 * time.Millisecond, P99: 10 * time.Millisecond},
		}, nil
	}
	return LatencyProfile{}, fmt.Errorf("segstore: unknown latency profile %q (want %s)", name, strings.Join(ProfileNames, ", "))
}

// none reports whether p adds nothing, so that wrapping can be skipped.
func (p LatencyProfile) none() bool {
	return p.Put.P50 <= 0 && p.Get.P50 <= 0 && p.SlowDown <= 0
}

// Latency wraps a Store and makes it behave like a remote object store: every request takes a latency
// drawn from the profile, and some attempts are refused with SlowDown. The draws come from one seeded
// generator, so a run with the same seed draws the same sequence (which request gets which draw still
// depends on how concurrent requests interleave).
type Latency struct {
	s Store
	p LatencyProfile

	mu  sync.Mutex
	rng *rand.Rand
}

var _ Store = (*Latency)(nil)

// NewLatency wraps s with profile p, drawing from a generator seeded with seed. The profile's latency
// is the whole request: when the inner store took part of it, the wrapper sleeps only the rest.
func NewLatency(s Store, p LatencyProfile, seed uint64) *Latency {
	return &Latency{s: s, p: p, rng: rand.New(rand.NewPCG(seed, 0x5eed_1a7e_0c1e))}
}

// WithProfile is NewLatency, except that the none profile returns s itself.
func WithProfile(s Store, p LatencyProfile, seed uint64) Store {
	if p.none() {
		return s
	}
	return NewLatency(s, p, seed)
}

// draw returns one attempt's latency and whether it is refused with SlowDown, and a backoff to wait
// before a retry.
func (l *Latency) draw(d LatencyDist) (lat time.Duration, slowDown bool, backoff time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lat = d.sample(l.rng.NormFloat64())
	slowDown = l.p.SlowDown > 0 && l.rng.Float64() < l.p.SlowDown
	if l.p.MaxBackoff > 0 {
		backoff = time.Duration(l.rng.Int64N(int64(l.p.MaxBackoff)))
	}
	return lat, slowDown, backoff
}

// do runs inner under the profile: a refused attempt never reaches the inner store; an accepted one
// does, and is then held until its drawn latency has passed.
func (l *Latency) do(ctx context.Context, d LatencyDist, inner func() error) error {
	return l.doAttempts(ctx, d, max(l.p.Attempts, 1), inner)
}

// doAttempts is do with at most attempts attempts.
func (l *Latency) doAttempts(ctx context.Context, d LatencyDist, attempts int, inner func() error) error {
	for attempt := 1; ; attempt++ {
		lat, slowDown, backoff := l.draw(d)
		if !slowDown {
			start := time.Now()
			err := inner()
			if werr := sleepCtx(ctx, lat-time.Since(start)); werr != nil && err == nil {
				err = werr
			}
			return err
		}
		if err := sleepCtx(ctx, lat); err != nil {
			return err
		}
		if attempt >= attempts {
			return ErrSlowDown
		}
		if err := sleepCtx(ctx, backoff); err != nil {
			return err
		}
	}
}

// sleepCtx waits d (nothing when d <= 0) or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Put implements Writer.
func (l *Latency) Put(ctx context.Context, key string, data ...[]byte) error {
	return l.do(ctx, l.p.Put, func() error { return l.s.Put(ctx, key, data...) })
}

// PutReader implements Writer. As the S3 store, it retries a SlowDown only for a reader that can seek.
func (l *Latency) PutReader(ctx context.Context, key string, size int64, r io.Reader) error {
	attempts := 1
	if _, ok := r.(io.Seeker); ok {
		attempts = max(l.p.Attempts, 1)
	}
	return l.doAttempts(ctx, l.p.Put, attempts, func() error { return l.s.PutReader(ctx, key, size, r) })
}

// Get implements Reader.
func (l *Latency) Get(ctx context.Context, key string) (b []byte, err error) {
	err = l.do(ctx, l.p.Get, func() error { b, err = l.s.Get(ctx, key); return err })
	if err != nil {
		return nil, err
	}
	return b, nil
}

// GetRange implements Reader.
func (l *Latency) GetRange(ctx context.Context, key string, off, length int64) (b []byte, err error) {
	err = l.do(ctx, l.p.Get, func() error { b, err = l.s.GetRange(ctx, key, off, length); return err })
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Delete implements Store.
func (l *Latency) Delete(ctx context.Context, key string) error {
	return l.do(ctx, l.p.Put, func() error { return l.s.Delete(ctx, key) })
}

// List implements Store.
func (l *Latency) List(ctx context.Context, prefix string) (keys []string, err error) {
	err = l.do(ctx, l.p.Get, func() error { keys, err = l.s.List(ctx, prefix); return err })
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// ListObjects implements Store.
func (l *Latency) ListObjects(ctx context.Context, prefix string) (objects []ObjectInfo, err error) {
	err = l.do(ctx, l.p.Get, func() error { objects, err = l.s.ListObjects(ctx, prefix); return err })
	if err != nil {
		return nil, err
	}
	return objects, nil
}

// Check implements Store.
func (l *Latency) Check(ctx context.Context) error {
	return l.do(ctx, l.p.Get, func() error { return l.s.Check(ctx) })
}
