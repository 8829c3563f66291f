package main

import (
	"bufio"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// series is a snapshot of Prometheus series: counters and gauges by name{labels}, and histograms by
// name{labels} with their cumulative buckets.
type series struct {
	values map[string]float64
	hists  map[string]hist
}

type hist struct {
	count   float64
	sum     float64
	uppers  []float64 // bucket upper bounds, ascending
	cumulat []float64 // cumulative counts per bucket
}

// gather snapshots a registry in process: no HTTP, no text parsing.
func gather(g prometheus.Gatherer) series {
	s := series{values: map[string]float64{}, hists: map[string]hist{}}
	mfs, _ := g.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName() + labelString(m.GetLabel())
			switch {
			case m.Counter != nil:
				s.values[key] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				s.values[key] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				h := hist{count: float64(m.GetHistogram().GetSampleCount()), sum: m.GetHistogram().GetSampleSum()}
				for _, b := range m.GetHistogram().GetBucket() {
					h.uppers = append(h.uppers, b.GetUpperBound())
					h.cumulat = append(h.cumulat, float64(b.GetCumulativeCount()))
				}
				s.hists[key] = h
			}
		}
	}
	return s
}

func labelString(ls []*dto.LabelPair) string {
	if len(ls) == 0 {
		return ""
	}
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = l.GetName() + `="` + l.GetValue() + `"`
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// delta is after - before of one counter.
func delta(before, after series, key string) float64 { return after.values[key] - before.values[key] }

// histDelta is the histogram of the observations made between before and after.
func histDelta(before, after series, key string) hist {
	a, b := after.hists[key], before.hists[key]
	d := hist{count: a.count - b.count, sum: a.sum - b.sum, uppers: a.uppers}
	for i := range a.cumulat {
		v := a.cumulat[i]
		if i < len(b.cumulat) {
			v -= b.cumulat[i]
		}
		d.cumulat = append(d.cumulat, v)
	}
	return d
}

// add merges o into h (same buckets), for the histograms of several agents.
func (h hist) add(o hist) hist {
	if h.uppers == nil {
		return o
	}
	out := hist{count: h.count + o.count, sum: h.sum + o.sum, uppers: h.uppers, cumulat: make([]float64, len(h.cumulat))}
	for i := range h.cumulat {
		out.cumulat[i] = h.cumulat[i]
		if i < len(o.cumulat) {
			out.cumulat[i] += o.cumulat[i]
		}
	}
	return out
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile does: linear within the bucket
// that holds it. NaN without observations.
func (h hist) quantile(q float64) float64 {
	if h.count <= 0 || len(h.uppers) == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lower, prev := 0.0, 0.0
	for i, up := range h.uppers {
		if h.cumulat[i] >= rank {
			if math.IsInf(up, 1) {
				return lower
			}
			if h.cumulat[i] == prev {
				return up
			}
			return lower + (up-lower)*(rank-prev)/(h.cumulat[i]-prev)
		}
		lower, prev = up, h.cumulat[i]
	}
	return lower
}

// scrapeText reads a Prometheus text exposition (etcd's /metrics) into name{labels} → value. Labels
// are kept as exposed (etcd's are already sorted).
func scrapeText(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out, sc.Err()
}

// etcdRequests counts the requests an etcd server handled: unary gRPC calls plus messages received on
// streams (lease keep-alives, watch requests), as e2e/failover counts them.
func etcdRequests(m map[string]float64) float64 {
	n := 0.0
	for k, v := range m {
		switch {
		case strings.HasPrefix(k, "grpc_server_handled_total{") && strings.Contains(k, `grpc_type="unary"`):
			n += v
		case strings.HasPrefix(k, "grpc_server_msg_received_total{") && strings.Contains(k, `grpc_type="bidi_stream"`):
			n += v
		}
	}
	return n
}
