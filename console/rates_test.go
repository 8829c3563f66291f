package console

import (
	"encoding/json"
	"math"
	"net/http"
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
	contains(t, "/", body, `class="charts" data-src="/api/rates"`, `<figure class="chart" data-key="produce">`,
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
