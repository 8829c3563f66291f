package main

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dev --s3-profile puts simulated S3 latency in the agents' stores, under their metrics.
func TestDevS3Profile(t *testing.T) {
	d := startDev(t, t.TempDir(), "--s3-profile", "express", "--flush-interval", "10ms")
	c := newTestCLI(t, map[string]string{"STREAMHOUSE_BROKERS": kafkaAddrs(t, d)[0]}, "")
	c.mustRun(t, "topic", "create", "t", "--partitions", "1")
	c.stdin = strings.NewReader("one\ntwo\nthree\n")
	c.mustRun(t, "produce", "t")

	m := scrapeMetrics(t, d.line(t, "http address")+"/metrics")
	sum, n := m[`streamhouse_s3_request_duration_seconds_sum{op="put"}`], m[`streamhouse_s3_request_duration_seconds_count{op="put"}`]
	if n == 0 {
		t.Fatalf("no PUT measured:\n%v", m)
	}
	// express: PUT p50 5ms, p99 15ms; no PUT is faster than about a millisecond.
	if mean := time.Duration(sum / n * float64(time.Second)); mean < 2*time.Millisecond {
		t.Errorf("mean PUT latency %v under the express profile, want about 5ms", mean)
	}
}

func TestDevS3ProfileFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--s3-profile", "glacier"}, "unknown latency profile"},
		{[]string{"--s3-profile", "standard", "--agents", "0"}, "--agents 0"},
	} {
		c := newTestCLI(t, nil, "")
		args := append([]string{"dev", "--data-dir", t.TempDir()}, tc.args...)
		if code := c.exec(args...); code != 2 || !strings.Contains(c.err.String(), tc.want) {
			t.Errorf("dev %v: exit %d, stderr %q; want 2 and %q", tc.args, code, c.err, tc.want)
		}
	}
}

// scrapeMetrics reads a Prometheus text exposition into series → value.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}
