package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

// samplesOf makes samples at the given seconds with etcd keys and RSS from the functions.
func samplesOf(secs []float64, keys func(s float64) int64, rss func(s float64) int64) []sample {
	var out []sample
	for _, s := range secs {
		smp := unmeasured(time.Duration(s*float64(time.Second)), int64(s)*100)
		smp.EtcdKeys, smp.RSS = keys(s), rss(s)
		out = append(out, smp)
	}
	return out
}

func rowOf(t *testing.T, s summary, id string) row {
	t.Helper()
	for _, r := range s.Rows {
		if r.Figure == id {
			return r
		}
	}
	t.Fatalf("no row %s", id)
	return row{}
}

// near allows for byte counts truncated to integers.
func near(a, b float64) bool { return math.Abs(a-b) < 1e-6*max(1, math.Abs(b)) }

func TestSummarizeFlatSecondHalf(t *testing.T) {
	t.Parallel()
	// Keys grow 10/s for the first 5 minutes, then stay at 3,000: flat over the second half of a
	// 10-minute run. RSS grows 1 MiB a minute throughout.
	var secs []float64
	for s := 0.0; s <= 600; s += 10 {
		secs = append(secs, s)
	}
	keys := func(s float64) int64 { return int64(10 * min(s, 300)) }
	rss := func(s float64) int64 { return int64(100<<20 + s/60*(1<<20)) }
	sum := summarize(samplesOf(secs, keys, rss), figures())
	if sum.StartS != 0 || sum.MiddleS != 300 || sum.EndS != 600 {
		t.Fatalf("start, middle, end at %v, %v, %v s; want 0, 300, 600", sum.StartS, sum.MiddleS, sum.EndS)
	}
	k := rowOf(t, sum, "etcd_keys")
	if k.Start != 0 || k.Middle != 3000 || k.End != 3000 || !near(float64(k.PerMin), 0) {
		t.Errorf("etcd keys row %+v: want 0, 3000, 3000, +0/min", k)
	}
	r := rowOf(t, sum, "rss_mib")
	if !near(float64(r.Start), 100) || !near(float64(r.End), 110) || !near(float64(r.PerMin), 1) {
		t.Errorf("RSS row %+v: want 100, …, 110 MiB, +1 MiB/min", r)
	}
	if a := rowOf(t, sum, "records_acked"); !near(float64(a.PerMin), 6000) {
		t.Errorf("records acked %+v: want +6000/min", a)
	}
}

func TestSummarizeSkipsUnmeasured(t *testing.T) {
	t.Parallel()
	smps := samplesOf([]float64{0, 60, 120, 180, 240}, func(s float64) int64 { return int64(s) }, func(float64) int64 { return 1 << 20 })
	smps[3].EtcdKeys = notMeasured // a failed sample in the second half
	smps[4].S3 = objCount{notMeasured, notMeasured}
	sum := summarize(smps, figures())
	k := rowOf(t, sum, "etcd_keys")
	if !near(float64(k.PerMin), 60) {
		t.Errorf("etcd keys per minute %v, want 60 from the measured samples", k.PerMin)
	}
	if o := rowOf(t, sum, "s3_objects"); !math.IsNaN(float64(o.End)) || !math.IsNaN(float64(o.PerMin)) {
		t.Errorf("S3 objects row %+v: never measured, want NaN", o)
	}
	b, err := json.Marshal(rowOf(t, sum, "s3_objects"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"end":null`) {
		t.Errorf("JSON of a row not measured: %s; want null figures", b)
	}
}

func TestMiddle(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		secs []float64
		want int
	}{
		{[]float64{0}, 0},
		{[]float64{0, 10}, 0},
		{[]float64{0, 10, 38, 60}, 2},
		{[]float64{0, 29, 33, 60}, 1},
		{[]float64{5, 15, 25, 35, 45}, 2},
	} {
		if got := middle(samplesOf(tc.secs, func(float64) int64 { return 0 }, func(float64) int64 { return 0 })); got != tc.want {
			t.Errorf("middle of %v: %d, want %d", tc.secs, got, tc.want)
		}
	}
}

func TestSlope(t *testing.T) {
	t.Parallel()
	if got := slope([]float64{0, 1, 2, 3}, []float64{1, 3, 5, 7}); !near(got, 2) {
		t.Errorf("slope of y = 2x+1: %v", got)
	}
	// A sawtooth around a flat level: the slope of its samples, not of its last two.
	if got := slope([]float64{0, 1, 2, 3, 4, 5}, []float64{10, 20, 10, 20, 10, 20}); math.Abs(got) > 1.2 {
		t.Errorf("slope of a flat sawtooth: %v", got)
	}
	if got := slope([]float64{1}, []float64{1}); !math.IsNaN(got) {
		t.Errorf("slope of one point: %v, want NaN", got)
	}
	if got := slope([]float64{2, 2}, []float64{1, 5}); !math.IsNaN(got) {
		t.Errorf("slope of one x: %v, want NaN", got)
	}
}

func TestPrintTable(t *testing.T) {
	t.Parallel()
	smps := samplesOf([]float64{0, 60, 120}, func(s float64) int64 { return int64(s) * 1000 }, func(float64) int64 { return 3 << 20 })
	var b strings.Builder
	summarize(smps, figures()).print(&b, figures())
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != len(figures())+1 {
		t.Fatalf("%d lines, want a header and %d rows:\n%s", len(lines), len(figures()), b.String())
	}
	for _, l := range lines[1:] {
		if len(l) != len(lines[0]) {
			t.Errorf("line %q is %d wide, the header %d:\n%s", l, len(l), len(lines[0]), b.String())
		}
	}
	if !strings.Contains(b.String(), "etcd keys ") || !strings.Contains(b.String(), "120,000") || !strings.Contains(b.String(), "+60,000") {
		t.Errorf("table lacks the etcd keys row (120,000 at the end, +60,000/min):\n%s", b.String())
	}
}

func TestThousands(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -4500: "-4,500"} {
		if got := thousands(n); got != want {
			t.Errorf("thousands(%d) = %q, want %q", n, got, want)
		}
	}
}
