package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// series is a Prometheus text exposition: series (name and labels, as printed) → value.
type series map[string]float64

// scrape reads a /metrics URL.
func scrape(url string) (series, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	out := series{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
			out[l[:i]] = v
		}
	}
	return out, sc.Err()
}

// label returns the value of label key in a series name such as `m{a="x",b="y"}`.
func label(s, key string) string {
	_, rest, ok := strings.Cut(s, key+`="`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}

// sumBy adds the series of metric name whose labels match every pair of where, grouped by label by.
func (s series) sumBy(name, by string, where ...string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range s {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		match := true
		for i := 0; i+1 < len(where); i += 2 {
			match = match && label(k, where[i]) == where[i+1]
		}
		if match {
			out[label(k, by)] += v
		}
	}
	return out
}

// histogram is a cumulative Prometheus histogram: upper bound → count of observations ≤ it.
type histogram map[float64]float64

// histogramOf extracts histogram name (without labels) from s.
func (s series) histogramOf(name string) histogram {
	h := histogram{}
	for k, v := range s {
		rest, ok := strings.CutPrefix(k, name+"_bucket{")
		if !ok {
			continue
		}
		le := label("{"+rest, "le")
		bound, err := strconv.ParseFloat(le, 64)
		if le == "+Inf" {
			bound, err = math.Inf(1), nil
		}
		if err == nil {
			h[bound] += v
		}
	}
	return h
}

func (h histogram) add(o histogram) {
	for b, c := range o {
		h[b] += c
	}
}

func (h histogram) count() float64 { return h[math.Inf(1)] }

// quantile estimates the q-quantile as Prometheus's histogram_quantile does: linear interpolation
// inside the bucket holding it (0 as the lower bound of the first; the last finite bound when it
// falls in +Inf).
func (h histogram) quantile(q float64) float64 {
	bounds := slices.Sorted(func(yield func(float64) bool) {
		for b := range h {
			if !yield(b) {
				return
			}
		}
	})
	if len(bounds) == 0 || h.count() == 0 {
		return math.NaN()
	}
	rank := q * h.count()
	prevBound, prevCount := 0.0, 0.0
	for _, b := range bounds {
		if h[b] >= rank {
			if math.IsInf(b, 1) {
				return prevBound
			}
			if h[b] == prevCount {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCount)/(h[b]-prevCount)
		}
		prevBound, prevCount = b, h[b]
	}
	return prevBound
}

// summary is the median and maximum of durations.
func summary(ds []time.Duration) (median, maximum time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Sorted(slices.Values(ds))
	n := len(s)
	if n%2 == 1 {
		median = s[n/2]
	} else {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[n-1]
}
