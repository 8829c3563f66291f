package console

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/streamhouse/streamhouse/coord"
)

// producing is a console whose agent produced mib MiB in the second between its two samples.
func producing(t *testing.T, self string, mib float64, mutate ...func(*Config)) *testConsole {
	t.Helper()
	reg := prometheus.NewRegistry()
	produced := prometheus.NewCounter(prometheus.CounterOpts{Name: "streamhouse_produce_bytes_total"})
	reg.MustRegister(produced)
	tc := newTestConsole(t, append([]func(*Config){func(c *Config) { c.Metrics, c.Self = reg, self }}, mutate...)...)
	tc.rates.sample()
	tc.clock.add(time.Second)
	produced.Add(mib * (1 << 20))
	tc.rates.sample()
	return tc
}

// The charts are the cluster's from any agent: /api/rates?scope=cluster sums the serving agent's rates
// and those every other registered agent serves, each asked with what Config.Peer adds; an agent that
// does not answer, or registered no HTTP address, is listed with the reason and left out of the sum,
// and the answer is still the others' sum.
func TestClusterRates(t *testing.T) {
	t.Parallel()
	var peerHeader atomic.Value
	a2 := producing(t, "a2", 2, func(c *Config) {
		c.Middleware = func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				peerHeader.Store(r.Header.Get("X-Test-Peer") + " " + r.URL.RequestURI())
				h.ServeHTTP(w, r)
			})
		}
	})
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	a1 := producing(t, "a1", 1, func(c *Config) {
		c.Peer = func(r *http.Request) { r.Header.Set("X-Test-Peer", "from a1") }
	})
	a1.view.update(func(v *fakeView) {
		v.agents[1].HTTP = a2.srv.URL + "/" // a trailing slash is no second one
		v.agents[2].HTTP = gone.URL
		v.agents = append(v.agents, coord.AgentInfo{ID: "c1", Addr: "10.0.0.4:9092"})
	})

	var got ratesJSON
	_, body := a1.get(t, "/api/rates?scope=cluster")
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if want := []int64{4601000}; !slices.Equal(got.Times, want) {
		t.Errorf("times %v, want %v", got.Times, want)
	}
	for _, s := range got.Series {
		want := 0.0
		if s.Key == "produce" {
			want = 3 // a1's 1 MiB/s and a2's 2
		}
		if len(s.Points) != 1 || math.Abs(s.Points[0]-want) > 1e-9 {
			t.Errorf("%s: %v, want [%v]", s.Key, s.Points, want)
		}
	}
	states := map[string]string{}
	for _, a := range got.Agents {
		states[a.ID] = a.State
	}
	if len(got.Agents) != 4 || states["a1"] != "ok" || states["a2"] != "ok" || !strings.HasPrefix(states["b1"], "unreachable: ") ||
		states["c1"] != "no HTTP address registered" {
		t.Errorf("agents %+v", got.Agents)
	}
	if h, _ := peerHeader.Load().(string); h != "from a1 /api/rates" {
		t.Errorf("a2 was asked with %q, want Config.Peer's header on /api/rates", h)
	}

	// Within a second the same answer serves every browser: a2 is not asked again.
	peerHeader.Store("")
	_, again := a1.get(t, "/api/rates?scope=cluster")
	if h := peerHeader.Load().(string); h != "" || again != body {
		t.Errorf("asked a2 again within the second (%q), or answered otherwise:\n%s\n%s", h, again, body)
	}
	a1.clock.add(time.Second)
	a1.get(t, "/api/rates?scope=cluster")
	if h := peerHeader.Load().(string); h == "" {
		t.Error("a2 not asked a second later")
	}

	// Without the scope, an agent serves its own rates only (what a peer asks for).
	_, body = a1.get(t, "/api/rates")
	got = ratesJSON{}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if got.Agents != nil || got.Series[0].Points[0] != 1 {
		t.Errorf("own rates: %s", body)
	}
}

// Agents sample on their own seconds: the sum takes each agent's latest point at or before each
// second, and ends at the latest second every agent reached.
func TestSumRates(t *testing.T) {
	t.Parallel()
	part := func(times []int64, produce ...float64) ratesJSON {
		return ratesJSON{Times: times, Series: []seriesJSON{{Key: "produce", Points: produce}}}
	}
	for _, c := range []struct {
		name  string
		parts []ratesJSON
		times []int64
		want  []float64
	}{
		{"apart by half a second", []ratesJSON{part([]int64{1000, 2000, 3000}, 1, 2, 3), part([]int64{1500, 2600}, 10, 20)},
			[]int64{1000, 2000}, []float64{11, 22}},
		{"two samples in one second, none in the next", []ratesJSON{part([]int64{1000, 2000, 3000}, 1, 2, 3),
			part([]int64{1100, 2050, 2950, 4000}, 10, 20, 30, 40)}, []int64{1000, 2000, 3000}, []float64{11, 32, 33}},
		{"an agent that started later", []ratesJSON{part([]int64{1000, 2000, 3000}, 1, 2, 3), part([]int64{3100}, 10)},
			[]int64{1000, 2000, 3000}, []float64{1, 2, 13}},
		{"an agent without points yet", []ratesJSON{part([]int64{1000}, 1), part(nil)}, []int64{1000}, []float64{1}},
		{"nothing", []ratesJSON{part(nil)}, []int64{}, []float64{}},
	} {
		got := sumRates(c.parts)
		if !slices.Equal(got.Times, c.times) || !slices.Equal(got.Series[0].Points, c.want) {
			t.Errorf("%s: times %v produce %v, want %v %v", c.name, got.Times, got.Series[0].Points, c.times, c.want)
		}
	}
}

// Another agent's /api/rates is bytes from the network: any bytes decode to rates whose sum is well
// formed, or to an error, never to a panic.
func FuzzDecodePeerRates(f *testing.F) {
	f.Add([]byte(`{"times":[1000,2000],"series":[{"key":"produce","points":[1,2]}]}`))
	f.Add([]byte(`{"times":[2000,1000],"series":[]}`))
	f.Add([]byte(`{"times":[1000],"series":[{"key":"fetch","points":[]}]}`))
	f.Add([]byte(`{"times":[-9223372036854775808,9223372036854775807],"series":[{"key":"produce","points":[1e308,1e308]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodePeerRates(b)
		if err != nil {
			return
		}
		sum := sumRates([]ratesJSON{r, r})
		for _, s := range sum.Series {
			if len(s.Points) != len(sum.Times) {
				t.Fatalf("%s: %d points for %d times", s.Key, len(s.Points), len(sum.Times))
			}
		}
		if len(sum.Times) > keepSamples {
			t.Fatalf("%d times", len(sum.Times))
		}
	})
}
