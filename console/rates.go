package console

import (
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const (
	// sampleEvery is the step of the charts.
	sampleEvery = time.Second
	// keepSamples is how many samples the charts show: five minutes.
	keepSamples = 300
)

// series are the charts: each the sum of some counters of the agent's registry, as a rate.
var series = []struct {
	Key, Title, Unit string
	scale            float64 // the counter's unit per chart unit
	metric           string
	labels           map[string][]string // a sample counts when each of these labels has one of the values
}{
	{"produce", "Produce", "MiB/s", 1 << 20, "streamhouse_produce_bytes_total", nil},
	{"fetch", "Fetch", "MiB/s", 1 << 20, "streamhouse_fetch_bytes_total", nil},
	{"s3_puts", "S3 PUTs", "/s", 1, "streamhouse_s3_requests_total", map[string][]string{"op": {"put", "put_stream"}}},
	{"s3_gets", "S3 GETs", "/s", 1, "streamhouse_s3_requests_total", map[string][]string{"op": {"get", "get_range"}}},
	{"etcd_txns", "etcd Txns", "/s", 1, "streamhouse_etcd_txns_total", nil},
	{"cross_zone", "Cross-zone", "KiB/s", 1 << 10, "streamhouse_cross_zone_bytes_total", nil},
}

// rates keeps the latest samples of the series' counters.
type rates struct {
	g   prometheus.Gatherer
	now func() time.Time

	mu      sync.Mutex
	times   []time.Time
	totals  [][]float64 // per sample, per series
	lastErr error
	sampled chan<- struct{} // tests: told of each sample, when set
}

func newRates(g prometheus.Gatherer, now func() time.Time) *rates { return &rates{g: g, now: now} }

// sample gathers the counters once. It runs every second whether or not a page is open, so that a page
// opened shows the last minutes at once; a gathering of the agent's registry costs well under a
// millisecond.
func (r *rates) sample() {
	if r.g == nil {
		return
	}
	mfs, err := r.g.Gather()
	tot := totals(mfs)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastErr = err
	r.times = append(r.times, r.now())
	r.totals = append(r.totals, tot)
	if over := len(r.times) - keepSamples - 1; over > 0 {
		r.times, r.totals = r.times[over:], r.totals[over:]
	}
	if r.sampled != nil {
		r.sampled <- struct{}{}
	}
}

// totals sums each series' counters in one gathering.
func totals(mfs []*dto.MetricFamily) []float64 {
	out := make([]float64, len(series))
	for _, mf := range mfs {
		for i, s := range series {
			if mf.GetName() != s.metric {
				continue
			}
			for _, m := range mf.GetMetric() {
				if matches(m, s.labels) {
					out[i] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func matches(m *dto.Metric, want map[string][]string) bool {
	for name, values := range want {
		ok := false
		for _, lp := range m.GetLabel() {
			if lp.GetName() == name {
				for _, v := range values {
					ok = ok || lp.GetValue() == v
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// ratesJSON is /api/rates: per series, the rate between consecutive samples.
type ratesJSON struct {
	Times  []int64      `json:"times"` // Unix ms of each point
	Series []seriesJSON `json:"series"`
	// Agents, in a cluster answer (?scope=cluster), are the agents summed and those missing, and why.
	Agents []agentRates `json:"agents,omitempty"`
}

type seriesJSON struct {
	Key    string    `json:"key"`
	Title  string    `json:"title"`
	Unit   string    `json:"unit"`
	Points []float64 `json:"points"`
}

func (r *rates) json() ratesJSON {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := ratesJSON{Times: []int64{}}
	for i := 1; i < len(r.times); i++ {
		out.Times = append(out.Times, r.times[i].UnixMilli())
	}
	for si, s := range series {
		sj := seriesJSON{Key: s.Key, Title: s.Title, Unit: s.Unit, Points: []float64{}}
		for i := 1; i < len(r.times); i++ {
			dt := r.times[i].Sub(r.times[i-1]).Seconds()
			d := r.totals[i][si] - r.totals[i-1][si]
			if dt <= 0 || d < 0 { // a counter reset: no rate for that step
				d = 0
			}
			if dt > 0 {
				d /= dt
			}
			sj.Points = append(sj.Points, d/s.scale)
		}
		out.Series = append(out.Series, sj)
	}
	return out
}

// serveRates is /api/rates: this agent's rates, or with ?scope=cluster every registered agent's summed.
func (c *Console) serveRates(w http.ResponseWriter, r *http.Request) {
	out := c.rates.json()
	if r.URL.Query().Get("scope") == "cluster" {
		out = c.clusterRates(r.Context())
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(out)
}
