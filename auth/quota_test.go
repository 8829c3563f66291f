package auth

import (
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/coord"
)

type fakeQuotas struct {
	gen atomic.Uint64
	qs  []coord.ClientQuota
}

func (f *fakeQuotas) SecurityGeneration() uint64  { return f.gen.Load() }
func (f *fakeQuotas) Quotas() []coord.ClientQuota { return f.qs }

// set adds values to an entity's quota.
func (f *fakeQuotas) set(e coord.QuotaEntity, produce, fetch float64) {
	defer f.gen.Add(1)
	v := map[string]float64{}
	for _, q := range f.qs {
		if q.Entity == e {
			v = q.Values
		}
	}
	if produce > 0 {
		v[ProducerByteRate] = produce
	}
	if fetch > 0 {
		v[ConsumerByteRate] = fetch
	}
	for _, q := range f.qs {
		if q.Entity == e {
			return
		}
	}
	f.qs = append(f.qs, coord.ClientQuota{Entity: e, Values: v})
}

func newQuotas(t testing.TB, src QuotaSource) *Quotas {
	t.Helper()
	q, err := NewQuotas(src, QuotaConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

var (
	u  = coord.Named
	dE = coord.DefaultEntity
)

// The first of Kafka's eight levels that sets a rate of the asked kind applies.
func TestQuotaPrecedence(t *testing.T) {
	t.Parallel()
	levels := []coord.QuotaEntity{
		{User: u("alice"), ClientID: u("app")}, {User: u("alice"), ClientID: dE}, {User: u("alice")},
		{User: dE, ClientID: u("app")}, {User: dE, ClientID: dE}, {User: dE}, {ClientID: u("app")}, {ClientID: dE},
	}
	for first := range levels {
		src := &fakeQuotas{}
		for i := first; i < len(levels); i++ {
			src.set(levels[i], float64(100*(i+1)), 0)
		}
		src.set(coord.QuotaEntity{User: u("alice"), ClientID: u("app")}, 0, 5) // a fetch quota only: not a produce one
		q := newQuotas(t, src)
		q.refresh()
		limit, _, ok := q.resolve(QuotaProduce, "alice", "app")
		if !ok || limit != float64(100*(first+1)) {
			t.Errorf("levels from %d: produce limit %v %v, want %d", first, limit, ok, 100*(first+1))
		}
		if limit, _, ok := q.resolve(QuotaFetch, "alice", "app"); !ok || limit != 5 {
			t.Errorf("fetch limit %v %v", limit, ok)
		}
	}
	q := newQuotas(t, &fakeQuotas{})
	if d := q.Record(QuotaProduce, "alice", "app", 1<<30, time.Unix(0, 0)); d != 0 {
		t.Fatalf("throttled %v without a quota", d)
	}
}

// A user quota is shared by the user's client ids; a client-id quota is per client id.
func TestQuotaRatesKeptPerMatchedEntity(t *testing.T) {
	t.Parallel()
	src := &fakeQuotas{}
	src.set(coord.QuotaEntity{User: u("alice")}, 1000, 0)
	src.set(coord.QuotaEntity{ClientID: dE}, 1000, 0)
	q := newQuotas(t, src)
	now := time.Unix(100, 0)
	// 10 s × 1000 B/s = 10,000 bytes fit the window of an idle client.
	if d := q.Record(QuotaProduce, "alice", "a", 6000, now); d != 0 {
		t.Fatalf("first 6000 bytes throttled %v", d)
	}
	if d := q.Record(QuotaProduce, "alice", "b", 6000, now); d == 0 {
		t.Fatal("alice's second client id has a rate of its own")
	}
	if d := q.Record(QuotaProduce, "bob", "c", 6000, now); d != 0 {
		t.Fatalf("bob's client c throttled %v", d)
	}
	if d := q.Record(QuotaProduce, "carol", "d", 6000, now); d != 0 {
		t.Fatalf("client d throttled %v by c's rate", d)
	}
}

// Kafka's formula: (rate - quota) / quota × window.
func TestQuotaThrottleFormula(t *testing.T) {
	t.Parallel()
	src := &fakeQuotas{}
	src.set(coord.QuotaEntity{ClientID: dE}, 1000, 0)
	q := newQuotas(t, src)
	now := time.Unix(100, 0)
	// One sample of 20,000 bytes: window 10 s (num-1 windows), rate 2,000 B/s, throttle 1 × 10 s.
	if d := q.Record(QuotaProduce, "", "c", 20000, now); d != 10*time.Second {
		t.Fatalf("throttle %v, want 10s", d)
	}
	if n := testutil.ToFloat64(q.metrics.throttled[QuotaProduce]); n != 1 {
		t.Fatalf("throttled counted %v", n)
	}
	// A whole span later the samples are reset: the rate starts afresh.
	if d := q.Record(QuotaProduce, "", "c", 100, now.Add(11*time.Second)); d != 0 {
		t.Fatalf("after a quiet span: %v", d)
	}
}

// A client that honours its throttle times is held to its quota: the property that makes quotas
// work, over random request sizes and a rate far above the quota.
func TestQuotaHoldsObedientClientToQuota(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	for _, quota := range []float64{1 << 10, 1 << 20, 50 << 20} {
		src := &fakeQuotas{}
		src.set(coord.QuotaEntity{User: dE}, quota, 0)
		q := newQuotas(t, src)
		start := time.Unix(1000, 0)
		now, total := start, 0.0
		for now.Sub(start) < 10*time.Minute {
			n := int64(quota/10*r.Float64()) + 1
			total += float64(n)
			d := q.Record(QuotaProduce, "u", "c", n, now)
			now = now.Add(d + time.Millisecond) // sends again as soon as allowed
		}
		got := total / now.Sub(start).Seconds()
		if math.Abs(got-quota)/quota > 0.10 {
			t.Errorf("quota %v B/s: the client got %v B/s", quota, got)
		}
	}
}

func TestQuotaSweepAndConfig(t *testing.T) {
	t.Parallel()
	src := &fakeQuotas{}
	src.set(coord.QuotaEntity{ClientID: dE}, 1000, 0)
	q := newQuotas(t, src)
	now := time.Unix(100, 0)
	for i := range 100 {
		q.Record(QuotaProduce, "", string(rune('a'+i%26))+string(rune('a'+i/26)), 1, now)
	}
	q.Record(QuotaProduce, "", "late", 1, now.Add(12*time.Second))
	if len(q.rates) != 1 {
		t.Fatalf("%d rates kept after a quiet span, want 1", len(q.rates))
	}
	if _, err := NewQuotas(src, QuotaConfig{WindowNum: 1}); err == nil {
		t.Fatal("one window accepted")
	}
	for _, bad := range []struct {
		k string
		v float64
	}{{"request_percentage", 1}, {ProducerByteRate, 0}, {ProducerByteRate, -1}, {ProducerByteRate, math.NaN()}, {ConsumerByteRate, math.Inf(1)}} {
		if ValidateQuota(bad.k, bad.v) == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// A throttled fetch's bytes are taken back (Kafka's unrecordQuotaSensor), and a fetch is capped to
// a window's worth of the quota.
func TestQuotaUnrecordAndWindowBytes(t *testing.T) {
	t.Parallel()
	src := &fakeQuotas{}
	src.set(coord.QuotaEntity{ClientID: dE}, 0, 1000)
	q := newQuotas(t, src)
	if got := q.WindowBytes(QuotaFetch, "", "c"); got != 10000 {
		t.Errorf("window bytes %d, want 1000 B/s x 10 s", got)
	}
	if got := q.WindowBytes(QuotaProduce, "", "c"); got != 0 {
		t.Errorf("window bytes without a produce quota: %d", got)
	}
	now := time.Unix(100, 0)
	if d := q.Record(QuotaFetch, "", "c", 20000, now); d == 0 {
		t.Fatal("20,000 bytes against 1,000 B/s over 10 s: not throttled")
	}
	q.Unrecord(QuotaFetch, "", "c", 20000, now)
	if d := q.Record(QuotaFetch, "", "c", 5000, now.Add(time.Millisecond)); d != 0 {
		t.Fatalf("after the throttled bytes were taken back: throttled %v", d)
	}
}
