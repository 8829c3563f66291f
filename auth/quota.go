package auth

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
)

// QuotaKind is which byte rate a quota bounds.
type QuotaKind int

// The byte-rate quotas, and their keys in a quota entity's values (Kafka's names).
const (
	QuotaProduce QuotaKind = iota
	QuotaFetch
)

// Quota value keys.
const (
	ProducerByteRate = "producer_byte_rate"
	ConsumerByteRate = "consumer_byte_rate"
)

// QuotaKeys are the quota values this version enforces.
var QuotaKeys = []string{ProducerByteRate, ConsumerByteRate}

func (k QuotaKind) key() string {
	if k == QuotaFetch {
		return ConsumerByteRate
	}
	return ProducerByteRate
}

func (k QuotaKind) String() string {
	if k == QuotaFetch {
		return "fetch"
	}
	return "produce"
}

// Kafka's defaults: quota.window.num and quota.window.size.seconds.
const (
	DefaultQuotaWindowNum  = 11
	DefaultQuotaWindowSize = time.Second
)

// ValidateQuota checks a value AlterClientQuotas would set: a known key and a positive rate.
func ValidateQuota(key string, v float64) error {
	if key != ProducerByteRate && key != ConsumerByteRate {
		return fmt.Errorf("auth: unknown quota %q (want %s or %s)", key, ProducerByteRate, ConsumerByteRate)
	}
	if !(v > 0) || math.IsInf(v, 0) {
		return fmt.Errorf("auth: quota %s = %v: want a positive number of bytes per second", key, v)
	}
	return nil
}

// QuotaSource is where quotas are read: coord's watched view (*coord.Cache).
type QuotaSource interface {
	SecurityGeneration() uint64
	Quotas() []coord.ClientQuota
}

// QuotaConfig configures the quota calculator.
type QuotaConfig struct {
	WindowNum  int           // samples kept; default DefaultQuotaWindowNum, at least 2
	WindowSize time.Duration // each sample's window; default DefaultQuotaWindowSize
	Registerer prometheus.Registerer
}

// Quotas computes client throttle times as Kafka's ClientQuotaManager does (docs/INTERNALS.md,
// "Quotas"). Safe for concurrent use.
type Quotas struct {
	src     QuotaSource
	num     int
	size    time.Duration
	metrics quotaMetrics

	mu     sync.Mutex
	gen    uint64
	loaded bool
	limits map[coord.QuotaEntity]map[string]float64
	rates  map[rateKey]*sampledRate
	swept  time.Time
}

// rateKey is the entity a rate is kept for: Kafka's quota metric tags, per kind.
type rateKey struct {
	kind         QuotaKind
	user, client string
}

// NewQuotas validates cfg; it starts nothing.
func NewQuotas(src QuotaSource, cfg QuotaConfig) (*Quotas, error) {
	if cfg.WindowNum == 0 {
		cfg.WindowNum = DefaultQuotaWindowNum
	}
	if cfg.WindowSize == 0 {
		cfg.WindowSize = DefaultQuotaWindowSize
	}
	if cfg.WindowNum < 2 || cfg.WindowSize < time.Millisecond {
		return nil, fmt.Errorf("auth: quota windows: %d of %v (want at least 2 of at least 1ms)", cfg.WindowNum, cfg.WindowSize)
	}
	return &Quotas{src: src, num: cfg.WindowNum, size: cfg.WindowSize, metrics: newQuotaMetrics(cfg.Registerer),
		rates: map[rateKey]*sampledRate{}}, nil
}

// Record counts n bytes of kind for (user, client id) at now and returns how long the client must
// be throttled: 0 while its rate is within its quota, or when no quota applies.
func (q *Quotas) Record(kind QuotaKind, user, clientID string, n int64, now time.Time) time.Duration {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refresh()
	limit, key, ok := q.resolve(kind, user, clientID)
	if !ok {
		return 0
	}
	q.sweep(now)
	r := q.rates[key]
	if r == nil {
		r = &sampledRate{}
		q.rates[key] = r
	}
	r.record(float64(n), now, q.num, q.size)
	rate, window := r.rate(now, q.num, q.size)
	if rate <= limit {
		return 0
	}
	ms := math.Round((rate - limit) / limit * float64(window) / float64(time.Millisecond))
	d := time.Duration(min(ms, math.MaxInt32)) * time.Millisecond // Kafka's ThrottleMillis is an int32
	q.metrics.throttled[kind].Inc()
	q.metrics.seconds[kind].Add(d.Seconds())
	return d
}

// Unrecord takes back n bytes of kind recorded at now for (user, client id): what a throttled fetch
// recorded but was answered without (Kafka's unrecordQuotaSensor).
func (q *Quotas) Unrecord(kind QuotaKind, user, clientID string, n int64, now time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refresh()
	_, key, ok := q.resolve(kind, user, clientID)
	if !ok {
		return
	}
	if r := q.rates[key]; r != nil {
		r.record(-float64(n), now, q.num, q.size)
	}
}

// WindowBytes is the most bytes of kind (user, client id) may take at once: its quota over the
// shortest span a rate is measured over, (num - 1) windows; 0 when no quota applies. Kafka caps a
// fetch's size to it, so that one answer can never be throttled for good.
func (q *Quotas) WindowBytes(kind QuotaKind, user, clientID string) int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.refresh()
	limit, _, ok := q.resolve(kind, user, clientID)
	if !ok {
		return 0
	}
	return int64(math.Min(limit*(time.Duration(q.num-1)*q.size).Seconds(), math.MaxInt32))
}

// refresh copies the source's quotas when its generation moved.
func (q *Quotas) refresh() {
	gen := q.src.SecurityGeneration()
	if q.loaded && gen == q.gen {
		return
	}
	q.limits = map[coord.QuotaEntity]map[string]float64{}
	for _, cq := range q.src.Quotas() {
		q.limits[cq.Entity] = cq.Values
	}
	q.gen, q.loaded = gen, true
}

// resolve finds the quota of (user, client id) in Kafka's order of precedence, and the entity
// whose rate it bounds.
func (q *Quotas) resolve(kind QuotaKind, user, client string) (float64, rateKey, bool) {
	u, c, d := coord.Named(user), coord.Named(client), coord.DefaultEntity
	for _, step := range []struct {
		e           coord.QuotaEntity
		user, other bool // which names the rate is kept under
	}{
		{coord.QuotaEntity{User: u, ClientID: c}, true, true},
		{coord.QuotaEntity{User: u, ClientID: d}, true, true},
		{coord.QuotaEntity{User: u}, true, false},
		{coord.QuotaEntity{User: d, ClientID: c}, true, true},
		{coord.QuotaEntity{User: d, ClientID: d}, true, true},
		{coord.QuotaEntity{User: d}, true, false},
		{coord.QuotaEntity{ClientID: c}, false, true},
		{coord.QuotaEntity{ClientID: d}, false, true},
	} {
		v, ok := q.limits[step.e][kind.key()]
		if !ok || !(v > 0) {
			continue
		}
		key := rateKey{kind: kind}
		if step.user {
			key.user = user
		}
		if step.other {
			key.client = client
		}
		return v, key, true
	}
	return 0, rateKey{}, false
}

// sweep forgets, at most once a span, the rates not recorded for a whole span: all their samples
// would be reset, which is what a new rate is.
func (q *Quotas) sweep(now time.Time) {
	span := time.Duration(q.num) * q.size
	if now.Sub(q.swept) < span {
		return
	}
	q.swept = now
	for k, r := range q.rates {
		if now.Sub(r.used) >= span {
			delete(q.rates, k)
		}
	}
}

type quotaMetrics struct {
	throttled map[QuotaKind]prometheus.Counter
	seconds   map[QuotaKind]prometheus.Counter
}

func newQuotaMetrics(reg prometheus.Registerer) quotaMetrics {
	n := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_quota_throttled_total",
		Help: "Requests answered with a throttle time because the client exceeded its byte-rate quota, by kind (produce, fetch).",
	}, []string{"kind"})
	s := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_quota_throttle_seconds_total",
		Help: "Throttle time handed to clients over their byte-rate quota, by kind (produce, fetch).",
	}, []string{"kind"})
	m := quotaMetrics{throttled: map[QuotaKind]prometheus.Counter{}, seconds: map[QuotaKind]prometheus.Counter{}}
	for _, k := range []QuotaKind{QuotaProduce, QuotaFetch} {
		m.throttled[k], m.seconds[k] = n.WithLabelValues(k.String()), s.WithLabelValues(k.String())
	}
	register(reg, n, s)
	return m
}
