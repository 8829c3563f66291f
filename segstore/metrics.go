package segstore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics holds the object-store metrics. One Metrics can wrap several stores; they then share
// series.
type Metrics struct {
	requests *prometheus.CounterVec   // op, result
	duration *prometheus.HistogramVec // op
	bytes    *prometheus.CounterVec   // op, direction
}

// Result and direction label values.
const (
	resultOK    = "ok"
	resultError = "error"
	dirUpload   = "upload"   // bytes sent to the store
	dirDownload = "download" // bytes received from it
)

// NewMetrics registers the metrics with reg (nil: not registered, for tests that do not scrape).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_s3_requests_total",
			Help: "Object store requests by operation and result. Cancelled requests are not counted.",
		}, []string{"op", "result"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "streamhouse_s3_request_duration_seconds",
			Help:    "Object store request latency by operation, cancelled requests excluded.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15), // 1ms .. 16s
		}, []string{"op"}),
		bytes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_s3_bytes_total",
			Help: "Bytes moved by successful object store requests, by operation and direction (upload, download).",
		}, []string{"op", "direction"}),
	}
	// Initialise every series so that rates and alerts see zeros rather than nothing.
	for _, op := range allOps {
		m.requests.WithLabelValues(op, resultOK)
		m.requests.WithLabelValues(op, resultError)
		m.duration.WithLabelValues(op)
	}
	m.bytes.WithLabelValues(OpPut, dirUpload)
	m.bytes.WithLabelValues(OpPutStream, dirUpload)
	m.bytes.WithLabelValues(OpGet, dirDownload)
	m.bytes.WithLabelValues(OpGetRange, dirDownload)
	return m
}

// Wrap returns s with every request measured.
func (m *Metrics) Wrap(s Store) Store { return &instrumented{m: m, s: s} }

// observe records one request that started at start. A cancelled request is neither a success nor
// a failure of the store, so it is left out; a deadline is the store being slow, so it counts.
func (m *Metrics) observe(op string, start time.Time, err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	result := resultOK
	if err != nil {
		result = resultError
	}
	m.requests.WithLabelValues(op, result).Inc()
	m.duration.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (m *Metrics) moved(op, direction string, n int64) {
	m.bytes.WithLabelValues(op, direction).Add(float64(n))
}

type instrumented struct {
	m *Metrics
	s Store
}

func (i *instrumented) Put(ctx context.Context, key string, data ...[]byte) error {
	start := time.Now()
	err := i.s.Put(ctx, key, data...)
	i.m.observe(OpPut, start, err)
	if err == nil {
		i.m.moved(OpPut, dirUpload, parts(data).size())
	}
	return err
}

func (i *instrumented) PutReader(ctx context.Context, key string, size int64, r io.Reader) error {
	start := time.Now()
	err := i.s.PutReader(ctx, key, size, r)
	i.m.observe(OpPutStream, start, err)
	if err == nil {
		i.m.moved(OpPutStream, dirUpload, size)
	}
	return err
}

func (i *instrumented) Get(ctx context.Context, key string) ([]byte, error) {
	start := time.Now()
	b, err := i.s.Get(ctx, key)
	i.m.observe(OpGet, start, err)
	if err == nil {
		i.m.moved(OpGet, dirDownload, int64(len(b)))
	}
	return b, err
}

func (i *instrumented) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	start := time.Now()
	b, err := i.s.GetRange(ctx, key, off, length)
	i.m.observe(OpGetRange, start, err)
	if err == nil {
		i.m.moved(OpGetRange, dirDownload, int64(len(b)))
	}
	return b, err
}

func (i *instrumented) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := i.s.Delete(ctx, key)
	i.m.observe(OpDelete, start, err)
	return err
}

func (i *instrumented) List(ctx context.Context, prefix string) ([]string, error) {
	start := time.Now()
	keys, err := i.s.List(ctx, prefix)
	i.m.observe(OpList, start, err)
	return keys, err
}

func (i *instrumented) ListObjects(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	start := time.Now()
	objects, err := i.s.ListObjects(ctx, prefix)
	i.m.observe(OpList, start, err)
	return objects, err
}

func (i *instrumented) Check(ctx context.Context) error {
	start := time.Now()
	err := i.s.Check(ctx)
	i.m.observe(OpCheck, start, err)
	return err
}
