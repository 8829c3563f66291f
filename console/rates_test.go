package console

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// /api/rates turns the registry's counters into per-second rates between samples, and the agents page
// draws a chart for each series; nobody looking, nothing is sampled.
func TestRates(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	produced := prometheus.NewCounter(prometheus.CounterOpts{Name: "streamhouse_produce_bytes_total"})
	s3 := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamhouse_s3_requests_total"}, []string{"op", "result"})
	reg.MustRegister(produced, s3)
	tc := newTestConsole(t, func(c *Config) { c.Metrics = reg })

	_, body := tc.get(t, "/")
	contains(t, "/", body, `class="charts" data-src="/api/rates?scope=cluster"`, `<figure class="chart" data-key="produce">`,
		`data-key="s3_puts"`, `data-key="cross_zone"`, "<noscript>")
	tc.rates.sample()
	tc.clock.add(2 * time.Second)
	produced.Add(4 << 20)
	s3.WithLabelValues("put", "ok").Add(10)
	s3.WithLabelValues("put_stream", "ok").Add(2)
	s3.WithLabelValues("get_range", "error").Add(6)
	s3.WithLabelValues("list", "ok").Add(100)
	tc.rates.sample()

	resp, err := http.Get(tc.srv.URL + "/api/rates")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got ratesJSON
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if len(got.Times) != 1 || got.Times[0] != tc.clock.now().UnixMilli() {
		t.Fatalf("times = %v", got.Times)
	}
	want := map[string]float64{"produce": 2, "fetch": 0, "s3_puts": 6, "s3_gets": 3, "etcd_txns": 0, "cross_zone": 0}
	for _, s := range got.Series {
		if len(s.Points) != 1 || math.Abs(s.Points[0]-want[s.Key]) > 1e-9 {
			t.Errorf("%s: %v, want [%v]", s.Key, s.Points, want[s.Key])
		}
	}
	if len(got.Series) != len(want) {
		t.Errorf("%d series, want %d", len(got.Series), len(want))
	}
}

// A member's assignment is a client's bytes, as the group leader sent them: any bytes decode to an
// assignment or to none, never to a panic.
func FuzzDecodeAssignment(f *testing.F) {
	a := kmsg.NewConsumerMemberAssignment()
	a.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "orders", Partitions: []int32{0, 3}}}
	f.Add(a.AppendTo(nil))
	f.Add([]byte{})
	f.Add([]byte{0, 1, 0, 0, 0, 1, 0, 2, 'x'})
	f.Fuzz(func(t *testing.T, b []byte) {
		got := formatAssigned(decodeAssignment("consumer", b))
		if strings.Count(got, "[") != strings.Count(got, "]") {
			t.Errorf("assignment %q", got)
		}
		if decodeAssignment("connect", b) != nil {
			t.Error("decoded an assignment of another protocol type")
		}
	})
}

// Run samples the rates as it starts, not a tick later: traffic in an agent's first second (a client
// that was waiting for it) shows in the charts. Before, the first sample came one tick after Run
// started, and a burst before it was the base of every rate: the charts stayed at zero.
func TestRatesSampleAtStart(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	produced := prometheus.NewCounter(prometheus.CounterOpts{Name: "streamhouse_produce_bytes_total"})
	reg.MustRegister(produced)
	tc := newTestConsole(t, func(c *Config) { c.Metrics = reg })
	tick, sampled := make(chan time.Time), make(chan struct{}, 1)
	tc.sampleTick, tc.rates.sampled = tick, sampled
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tc.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		for { // a sample may wait for the test to take its news
			select {
			case <-sampled:
			case <-done:
				return
			}
		}
	})

	next := func(what string) {
		t.Helper()
		select {
		case <-sampled:
		case <-time.After(10 * time.Second): // a bound on a failure, not a wait for the sample
			t.Fatalf("no %s sample", what)
		}
	}
	next("base") // taken as Run starts, before any tick
	tc.clock.add(time.Second)
	produced.Add(1 << 20)
	tick <- time.Time{}
	next("second")
	got := tc.rates.json()
	if len(got.Series) == 0 || len(got.Series[0].Points) != 1 || got.Series[0].Points[0] != 1 {
		t.Fatalf("produce after one tick: %+v, want one point of 1 MiB/s", got.Series)
	}
}

// BenchmarkRatesSample is one rate sample of a registry the size of a busy agent's: 1,024 partitions,
// each with a few labelled series (about 6,000 series in all), besides the counters the charts sum.
// It answers whether a sample can take long enough to space the charts' points.
func BenchmarkRatesSample(b *testing.B) {
	reg := prometheus.NewRegistry()
	perPartition := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "streamhouse_partition_bench"}, []string{"topic", "partition", "kind"})
	produced := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamhouse_produce_bytes_total"}, []string{"topic"})
	s3 := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "streamhouse_s3_requests_total"}, []string{"op", "result"})
	reg.MustRegister(perPartition, produced, s3)
	for p := range 1024 {
		for _, k := range []string{"hwm", "log_start", "bytes", "objects", "lag", "epoch"} {
			perPartition.WithLabelValues("t", strconv.Itoa(p), k).Set(float64(p))
		}
	}
	for _, op := range []string{"put", "put_stream", "get", "get_range", "list", "delete"} {
		s3.WithLabelValues(op, "ok").Inc()
	}
	produced.WithLabelValues("t").Add(1)
	r := newRates(reg, time.Now)
	b.ReportAllocs()
	for b.Loop() {
		r.sample()
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/sample")
}
