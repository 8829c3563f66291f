package fault

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/cluster"
	"github.com/streamhouse/streamhouse/e2e/chaos/proxy"
	"github.com/streamhouse/streamhouse/e2e/chaos/s3fault"
	"github.com/streamhouse/streamhouse/e2e/chaos/workload"
)

var _ Cluster = (*cluster.Cluster)(nil)

// fake is a Cluster that records what faults do to it.
type fake struct {
	mu      sync.Mutex // the herd calls it from many goroutines
	agents  []string
	leader  string
	calls   []string
	added   int
	failure map[string]error // by call name
}

func newFake() *fake { return &fake{agents: []string{"a1", "a2", "a3"}, leader: "etcd2"} }

func (f *fake) call(format string, args ...any) error {
	c := fmt.Sprintf(format, args...)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
	return f.failure[strings.Fields(c)[0]]
}

func (f *fake) Agents() []string        { return slices.Clone(f.agents) }
func (f *fake) Brokers() []string       { return []string{"127.0.0.1:1"} }
func (f *fake) LeaseTTL() time.Duration { return 3 * time.Second }
func (f *fake) KillAgent(id string) error {
	return f.call("kill %s", id)
}
func (f *fake) StopAgent(_ context.Context, id string) error  { return f.call("stop %s", id) }
func (f *fake) StartAgent(_ context.Context, id string) error { return f.call("start %s", id) }
func (f *fake) PauseAgent(id string) error                    { return f.call("pause %s", id) }
func (f *fake) ResumeAgent(id string) error                   { return f.call("resume %s", id) }
func (f *fake) AddAgent(context.Context) (string, error) {
	f.added++
	id := fmt.Sprintf("a%d", len(f.agents)+f.added)
	return id, f.call("add %s", id)
}
func (f *fake) RemoveAgent(_ context.Context, id string) error { return f.call("remove %s", id) }
func (f *fake) SetEtcdLink(id string, m proxy.Mode) error      { return f.call("etcd-link %s %v", id, m) }
func (f *fake) SetS3Link(id string, m proxy.Mode) error        { return f.call("s3-link %s %v", id, m) }
func (f *fake) SetS3Rule(r s3fault.Rule) error                 { return f.call("s3-rule %v", r) }
func (f *fake) Members() []string                              { return []string{"etcd1", "etcd2", "etcd3"} }
func (f *fake) EtcdLeader(context.Context) (string, error)     { return f.leader, f.call("leader?") }
func (f *fake) KillMember(name string) error                   { return f.call("kill-member %s", name) }
func (f *fake) StartMember(_ context.Context, name string) error {
	return f.call("start-member %s", name)
}
func (f *fake) WaitHealthy(context.Context) error { return f.call("wait-healthy") }
func (f *fake) RaiseEtcdAlarm(context.Context) (string, error) {
	return "etcd1", f.call("alarm nospace")
}
func (f *fake) DisarmEtcdAlarms(context.Context) error { return f.call("disarm") }

// fakeHerd is a herd that answers at once.
type fakeHerd struct{ closed bool }

func (h *fakeHerd) WaitAnswered(context.Context, time.Time) (time.Duration, error) {
	return 1500 * time.Millisecond, nil
}
func (h *fakeHerd) Close() { h.closed = true }

func TestFaults(t *testing.T) {
	h := &fakeHerd{}
	startHerd = func(context.Context, []string, int) (herd, error) { return h, nil }
	stall := s3fault.Rule{Share: 0.5, Kind: s3fault.Stall, Stall: time.Second}
	slow := s3fault.Rule{Share: 0.3, Kind: s3fault.SlowDown}
	for _, tc := range []struct {
		f            Fault
		inject, heal []string
	}{
		{&AgentKill{Agent: "a2"}, []string{"kill a2"}, []string{"start a2"}},
		{&AgentPause{Agent: "a1"}, []string{"pause a1"}, []string{"resume a1"}},
		{&EtcdPartition{Agent: "a3", Mode: proxy.Mode{Kind: proxy.HalfOpen}}, []string{"etcd-link a3 half-open"}, []string{"etcd-link a3 pass"}},
		{&EtcdLatency{Agent: "a3", Delay: time.Second}, []string{"etcd-link a3 latency 1s"}, []string{"etcd-link a3 pass"}},
		{&S3Partition{Agent: "a1", Mode: proxy.Mode{Kind: proxy.Blackhole}}, []string{"s3-link a1 blackhole"}, []string{"s3-link a1 pass"}},
		{&S3Errors{Rule: slow}, []string{"s3-rule " + slow.String()}, []string{"s3-rule none"}},
		{&S3Latency{Rule: stall}, []string{"s3-rule " + stall.String()}, []string{"s3-rule none"}},
		{&MemberKill{Pick: 1}, []string{"leader?", "kill-member etcd3"}, []string{"start-member etcd3"}}, // etcd2 leads
		{&LeaderKill{}, []string{"leader?", "kill-member etcd2"}, []string{"start-member etcd2"}},
		{&EtcdNoSpace{}, []string{"alarm nospace"}, []string{"disarm"}},
		{&RollingRestart{}, []string{"stop a1", "start a1", "wait-healthy", "stop a2", "start a2", "wait-healthy",
			"stop a3", "start a3", "wait-healthy"}, nil},
		{&AddRemove{}, []string{"add a4"}, []string{"remove a4"}},
	} {
		t.Run(tc.f.Name(), func(t *testing.T) {
			c := newFake()
			if err := tc.f.Inject(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.calls, tc.inject) {
				t.Errorf("inject: %q, want %q", c.calls, tc.inject)
			}
			c.calls = nil
			if err := tc.f.Heal(context.Background(), c); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.calls, tc.heal) {
				t.Errorf("heal: %q, want %q", c.calls, tc.heal)
			}
			if !strings.HasPrefix(tc.f.String(), tc.f.Name()) {
				t.Errorf("String() = %q does not start with its name", tc.f.String())
			}
		})
	}
}

// The herd kills and starts every agent, then waits for its clients and reports how long it took.
func TestThunderingHerd(t *testing.T) {
	h := &fakeHerd{}
	startHerd = func(_ context.Context, seeds []string, n int) (herd, error) {
		if n != 200 || len(seeds) != 1 {
			t.Errorf("herd of %d on %v", n, seeds)
		}
		return h, nil
	}
	c := newFake()
	f := &ThunderingHerd{Conns: 200}
	if err := f.Inject(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	calls := slices.Clone(c.calls)
	slices.Sort(calls)
	want := []string{"kill a1", "kill a2", "kill a3", "start a1", "start a2", "start a3"}
	if !slices.Equal(calls, want) {
		t.Errorf("inject: %q, want %q in any order", c.calls, want)
	}
	if err := f.Heal(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if !h.closed || !strings.Contains(f.Report(), "1.5s") {
		t.Errorf("closed %v, report %q", h.closed, f.Report())
	}
}

// A fault that could not be injected says so.
func TestInjectErrors(t *testing.T) {
	c := newFake()
	c.failure = map[string]error{"kill": fmt.Errorf("no such process")}
	if err := (&AgentKill{Agent: "a1"}).Inject(context.Background(), c); err == nil {
		t.Error("AgentKill.Inject: no error")
	}
	if err := (&AddRemove{}).Heal(context.Background(), c); err == nil {
		t.Error("AddRemove.Heal before Inject: no error")
	}
	if err := (&MemberKill{}).Heal(context.Background(), c); err == nil {
		t.Error("MemberKill.Heal before Inject: no error")
	}
	if err := (&LeaderKill{}).Heal(context.Background(), c); err == nil {
		t.Error("LeaderKill.Heal before Inject: no error")
	}
}

func opts() Options {
	return Options{TTL: 3 * time.Second, Agents: []string{"a1", "a2", "a3"}, Members: []string{"etcd1", "etcd2", "etcd3"}, HerdConns: 200}
}

func describe(steps []Step) string {
	var b strings.Builder
	for _, s := range steps {
		fmt.Fprintln(&b, s)
	}
	return b.String()
}

// A round holds every fault once; the same seed gives the same steps, another seed others.
func TestScheduleRound(t *testing.T) {
	round := func(seed uint64) []Step {
		s, err := NewSchedule(seed, opts())
		if err != nil {
			t.Fatal(err)
		}
		return s.Round()
	}
	a := round(42)
	var names []string
	for _, s := range a {
		names = append(names, s.Fault.Name())
	}
	slices.Sort(names)
	want := slices.Sorted(slices.Values(Names))
	if !slices.Equal(names, want) {
		t.Errorf("round holds %v, want every fault once: %v", names, want)
	}
	if describe(a) != describe(round(42)) {
		t.Errorf("seed 42 gave two schedules:\n%s\n%s", describe(a), describe(round(42)))
	}
	if describe(a) == describe(round(43)) {
		t.Errorf("seeds 42 and 43 gave the same schedule:\n%s", describe(a))
	}
	for _, s := range a {
		switch s.Fault.Name() {
		case NameAgentKill, NameAgentPause, NameEtcdPartition:
			if s.Hold <= opts().TTL {
				t.Errorf("%v: a fault that must outlast the lease TTL holds %v", s.Fault, s.Hold)
			}
		}
	}
}

func TestScheduleOnly(t *testing.T) {
	o := opts()
	o.Only = []string{NameAgentKill, NameS3Errors}
	s, err := NewSchedule(1, o)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if n := s.Next().Fault.Name(); !slices.Contains(o.Only, n) {
			t.Errorf("Next drew %s, not in %v", n, o.Only)
		}
	}
	o.Only = []string{"clock-jump"}
	if _, err := NewSchedule(1, o); err == nil {
		t.Error("an unknown fault name was accepted")
	}
}

// fakeHostile is bad clients that report what Close is told to.
type fakeHostile struct {
	closed bool
	err    error
}

func (h *fakeHostile) Close() error   { h.closed = true; return h.err }
func (h *fakeHostile) Report() string { return "hostile clients sent: idle 3" }

// The hostile clients run while another fault is in effect: they start before it is injected and
// stop after it is healed, and what they saw fails the heal.
func TestHostileClient(t *testing.T) {
	h := &fakeHostile{}
	var cfg workload.HostileConfig
	startHostile = func(_ context.Context, c workload.HostileConfig) (hostileRun, error) {
		cfg = c
		return h, nil
	}
	c := newFake()
	f := &HostileClient{During: &AgentKill{Agent: "a2"}, Conns: 7, Topic: "chaos-a"}
	if err := f.Inject(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.calls, []string{"kill a2"}) || cfg.IdleConns != 7 || cfg.Topic != "chaos-a" || cfg.IdleFrom == cfg.From {
		t.Errorf("inject: calls %q, config %+v", c.calls, cfg)
	}
	if err := f.Heal(context.Background(), c); err != nil || !h.closed {
		t.Fatalf("heal: %v, closed %v", err, h.closed)
	}
	if !strings.HasPrefix(f.String(), NameHostile) || !strings.Contains(f.String(), "agent-kill a2") ||
		!strings.Contains(f.Report(), "idle 3") {
		t.Errorf("String %q, Report %q", f.String(), f.Report())
	}
	h.err = fmt.Errorf("a2 took a batch from made-up producer id 7")
	if err := f.Heal(context.Background(), c); err == nil {
		t.Error("a violation of the hostile clients did not fail the heal")
	}
}

// A hostile-client step runs during another fault of the schedule, for that fault's hold.
func TestScheduleHostile(t *testing.T) {
	o := opts()
	o.Only, o.HostileConns, o.HostileTopic = []string{NameHostile, NameAgentKill}, 520, "chaos-a"
	s, err := NewSchedule(3, o)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		st := s.Next()
		h, ok := st.Fault.(*HostileClient)
		if !ok {
			continue
		}
		if h.During.Name() != NameAgentKill || h.Conns != 520 || h.Topic != "chaos-a" || st.Hold <= o.TTL {
			t.Errorf("hostile step %v", st)
		}
	}
}
