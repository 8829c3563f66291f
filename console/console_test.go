package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// fakeView is a View the test changes.
type fakeView struct {
	mu      sync.Mutex
	st      coord.ClusterStatus
	agents  []coord.AgentInfo
	topics  []coord.Topic
	rev     int64
	changed chan struct{}
}

func newFakeView() *fakeView {
	v := &fakeView{changed: make(chan struct{}), rev: 7}
	v.agents = []coord.AgentInfo{
		{ID: "a1", Addr: "10.0.0.1:9092", AZ: "az1", Group: "default", Version: "v1.2.3", Started: time.Unix(1000, 0)},
		{ID: "a2", Addr: "10.0.0.2:9092", AZ: "az2", Group: "default", Version: "v1.2.3", Started: time.Unix(1000, 0)},
		{ID: "b1", Addr: "10.0.0.3:9092", AZ: "az1", Group: "batch", Version: "v1.2.4", Started: time.Unix(1000, 0)},
	}
	v.topics = []coord.Topic{{Name: "__consumer_offsets", ID: coord.TopicID{1}, Partitions: 1}, {Name: "orders", ID: coord.TopicID{2}, Partitions: 2}}
	v.st = coord.ClusterStatus{
		Agents: []coord.AgentStatus{{ID: "a1", AZ: "az1", Group: "default", Addr: "10.0.0.1:9092", PartitionsLed: 2},
			{ID: "a2", AZ: "az2", Group: "default", Addr: "10.0.0.2:9092", PartitionsLed: 1},
			{ID: "b1", AZ: "az1", Group: "batch", Addr: "10.0.0.3:9092"}},
		Partitions: []coord.PartitionStatus{
			{Topic: "__consumer_offsets", Partition: 0, Leader: new("a1"), Epoch: 1},
			{Topic: "orders", Partition: 0, Leader: new("a1"), Epoch: 3, LogStart: 5, NextOffset: 120, Bytes: 4096, Tail: 2, Objects: 2},
			{Topic: "orders", Partition: 1, Leader: new("a2"), Epoch: 4, NextOffset: 80, Bytes: 2048, Segments: 1, Objects: 1},
		},
	}
	return v
}

func (v *fakeView) Status() coord.ClusterStatus {
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.st
	st.Agents = append([]coord.AgentStatus(nil), v.st.Agents...)
	st.Partitions = append([]coord.PartitionStatus(nil), v.st.Partitions...)
	return st
}

func (v *fakeView) Agents() []coord.AgentInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]coord.AgentInfo(nil), v.agents...)
}

func (v *fakeView) Topics() []coord.Topic {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]coord.Topic(nil), v.topics...)
}

func (v *fakeView) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

func (v *fakeView) Revision() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.rev
}

// update changes the view and fires Changed, as the cache does on a watch event.
func (v *fakeView) update(fn func(v *fakeView)) {
	v.mu.Lock()
	fn(v)
	v.rev++
	close(v.changed)
	v.changed = make(chan struct{})
	v.mu.Unlock()
}

// fakeGroups is a GroupStore with one consumer group "readers" in the default agent group.
type fakeGroups struct {
	mu    sync.Mutex
	loads int
	err   error
}

func (g *fakeGroups) LoadGroups(_ context.Context, ns string, keep func(string) bool) ([]coord.GroupSnapshot, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.loads++
	if g.err != nil {
		return nil, g.err
	}
	if ns != "default" || !keep("readers") {
		return nil, nil
	}
	a := kmsg.NewConsumerMemberAssignment()
	a.Topics = []kmsg.ConsumerMemberAssignmentTopic{{Topic: "orders", Partitions: []int32{1, 0}}}
	return []coord.GroupSnapshot{{Name: "readers", Meta: &coord.GroupMeta{State: "Stable", Generation: 3, ProtocolType: "consumer",
		Protocol: "cooperative-sticky", Members: []coord.GroupMember{{ID: "m-1", ClientID: "billing", ClientHost: "/10.1.0.9",
			Assignment: a.AppendTo(nil)}}},
		Offsets: []coord.GroupOffset{{Topic: coord.TopicID{2}, Partition: 0, Offset: 100}, {Topic: coord.TopicID{2}, Partition: 1, Offset: 80},
			{Topic: coord.TopicID{9}, Partition: 0, Offset: 1}}}}, nil // topic 9 was deleted
}

type testConsole struct {
	*Console
	view   *fakeView
	groups *fakeGroups
	clock  *fakeClock
	srv    *httptest.Server
}

// fakeClock is the console's clock, moved by the test while Run reads it.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestConsole(t *testing.T, mutate ...func(*Config)) *testConsole {
	t.Helper()
	tc := &testConsole{view: newFakeView(), groups: &fakeGroups{}, clock: &fakeClock{t: time.Unix(4600, 0)}}
	cfg := Config{View: tc.view, Groups: tc.groups, Self: "a1", Now: tc.clock.now}
	for _, m := range mutate {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tc.Console = c
	tc.srv = httptest.NewServer(c.Handler())
	t.Cleanup(tc.srv.Close)
	return tc
}

// get fetches a path and returns the status and body.
func (tc *testConsole) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(tc.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func contains(t *testing.T, page, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q:\n%s", page, w, body)
		}
	}
}

// Every page is whole HTML with its tables in it: nothing needs JavaScript but the charts.
func TestPages(t *testing.T) {
	t.Parallel()
	tc := newTestConsole(t)
	code, body := tc.get(t, "/")
	if code != http.StatusOK {
		t.Fatalf("/: %d", code)
	}
	contains(t, "/", body, `<b id="agents-up">3</b> agents up`, `<b id="leaderless">0</b>`, `served by <b id="self">a1</b>`,
		`<tr data-agent="a1" class="up">`, "v1.2.4", "10.0.0.2:9092", "1h00m", `<td>az2</td><td>default</td>`)
	// By zone, then agent group: az1/batch, az1/default, az2/default.
	if b, a1, a2 := strings.Index(body, `data-agent="b1"`), strings.Index(body, `data-agent="a1"`), strings.Index(body, `data-agent="a2"`); !(b < a1 && a1 < a2) {
		t.Errorf("agents not ordered by zone and group: b1 at %d, a1 at %d, a2 at %d", b, a1, a2)
	}
	if strings.Contains(body, `class="charts"`) {
		t.Error("charts without a registry to sample")
	}

	_, body = tc.get(t, "/topics")
	contains(t, "/topics", body, `<a href="/topics/orders">orders</a>`, `<td class="num">195</td>`, "6.0 KiB", `class="internal"`)

	_, body = tc.get(t, "/topics/orders")
	contains(t, "/topics/orders", body, `<tr data-partition="0">`, `<td class="leader">a1</td>`, `<td class="num">3</td>`,
		`<td class="num">5</td>`, `<td class="num">120</td>`, "4.0 KiB", `<td class="leader">a2</td>`,
		"<td class=\"leader\">a1</td>\n  <td>az1</td>", "<td class=\"leader\">a2</td>\n  <td>az2</td>")
	if code, _ := tc.get(t, "/topics/nope"); code != http.StatusNotFound {
		t.Errorf("/topics/nope: %d", code)
	}

	_, body = tc.get(t, "/groups")
	contains(t, "/groups", body, `<a href="/groups/default/readers">readers</a>`, "Stable", `<td class="num lag">20</td>`)
	_, body = tc.get(t, "/groups/default/readers")
	contains(t, "/groups/default/readers", body, `<b id="total-lag">20</b>`, "billing", "orders[0,1]", "consumer (cooperative-sticky)",
		`<tr data-partition="orders/0">`, `<td class="num lag">20</td>`)
	if strings.Contains(body, "orders/9") || strings.Count(body, "data-partition=") != 2 {
		t.Errorf("a deleted topic's offsets shown:\n%s", body)
	}
	if code, _ := tc.get(t, "/groups/default/nope"); code != http.StatusNotFound {
		t.Errorf("/groups/default/nope: %d", code)
	}

	_, body = tc.get(t, "/failovers")
	contains(t, "/failovers", body, "Nothing has changed since this agent started.")
	for _, p := range []string{"/static/console.js", "/static/console.css"} {
		if code, body := tc.get(t, p); code != http.StatusOK || len(body) < 100 {
			t.Errorf("%s: %d, %d bytes", p, code, len(body))
		}
	}
	if code, _ := tc.get(t, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope: %d", code)
	}
}

// Names are escaped in pages and links: a topic name is the client's choice.
func TestPagesEscape(t *testing.T) {
	t.Parallel()
	tc := newTestConsole(t)
	tc.view.update(func(v *fakeView) {
		v.st.Partitions = append(v.st.Partitions, coord.PartitionStatus{Topic: `<script>x</script>`, Partition: 0})
	})
	_, body := tc.get(t, "/topics")
	if strings.Contains(body, "<script>x") || !strings.Contains(body, "&lt;script&gt;x&lt;/script&gt;") ||
		!strings.Contains(body, `href="/topics/%3Cscript%3Ex%3C%2Fscript%3E"`) {
		t.Errorf("a topic name not escaped:\n%s", body)
	}
}

// The console changes nothing: every method but GET and HEAD is refused.
func TestReadOnly(t *testing.T) {
	t.Parallel()
	tc := newTestConsole(t)
	for _, p := range []string{"/", "/topics", "/topics/orders", "/groups", "/groups/default/readers", "/failovers", "/api/rates"} {
		for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			req, _ := http.NewRequest(m, tc.srv.URL+p, strings.NewReader("x"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, p, resp.StatusCode)
			}
		}
	}
}

// Config.Middleware sits in front of every console handler: where authentication goes.
func TestMiddlewareWrapsEverything(t *testing.T) {
	t.Parallel()
	deny := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer ok" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	tc := newTestConsole(t, func(c *Config) { c.Middleware = deny })
	for _, p := range []string{"/", "/topics", "/topics/orders", "/groups", "/groups/default/readers", "/failovers", "/api/rates",
		"/static/console.js", "/nope"} {
		if code, _ := tc.get(t, p); code != http.StatusUnauthorized {
			t.Errorf("%s without credentials: %d", p, code)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, tc.srv.URL+"/", nil)
	req.Header.Set("Authorization", "Bearer ok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/ with credentials: %d", resp.StatusCode)
	}
}

// Groups are read once per second however many pages ask, and a failed read is shown, not hidden.
func TestGroupsReadRarely(t *testing.T) {
	t.Parallel()
	tc := newTestConsole(t)
	for range 5 {
		tc.get(t, "/groups")
	}
	tc.get(t, "/groups/default/readers")
	tc.groups.mu.Lock()
	loads := tc.groups.loads
	tc.groups.mu.Unlock()
	if loads != 2 { // one read per agent group: batch and default
		t.Errorf("%d reads for six pages within a second, want 2", loads)
	}
	tc.groups.mu.Lock()
	tc.groups.err = errors.New("etcd is away")
	tc.groups.mu.Unlock()
	tc.clock.add(groupsFresh)
	code, body := tc.get(t, "/groups")
	if code != http.StatusOK || !strings.Contains(body, "Reading the consumer groups from etcd failed: consumer groups of agent group batch: etcd is away") {
		t.Errorf("/groups with etcd away: %d\n%s", code, body)
	}
}

// The cluster gauges say what the view says, for the alerts.
func TestClusterGauges(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	tc := newTestConsole(t, func(c *Config) { c.Registerer = reg })
	tc.view.update(func(v *fakeView) { v.st.Partitions[2].Leader = nil })
	want := `
# HELP streamhouse_cluster_agents Agents registered in etcd, as this agent's view of the cluster holds them.
# TYPE streamhouse_cluster_agents gauge
streamhouse_cluster_agents 3
# HELP streamhouse_cluster_partitions Partitions of every topic, internal ones included, in this agent's view of the cluster.
# TYPE streamhouse_cluster_partitions gauge
streamhouse_cluster_partitions 3
# HELP streamhouse_cluster_partitions_without_leader Partitions no agent leads, in this agent's view of the cluster: neither produce nor group coordination works for them.
# TYPE streamhouse_cluster_partitions_without_leader gauge
streamhouse_cluster_partitions_without_leader 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if _, err := New(Config{View: tc.view, Groups: tc.groups, Registerer: reg}); err == nil {
		t.Error("a second console registered the same gauges")
	}
}
