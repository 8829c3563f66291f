package console

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// waitFor polls cond until it holds or the test's patience ends: Run reacts to the view on its own
// goroutine, and the test has no event of its own to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Run records an agent leaving and its partition moving to another agent, across a spell without a
// leader, as one failover, and a handover between live agents as a move; the agents page lists the
// agent that left as down; the failovers page shows it all.
func TestRunRecordsFailovers(t *testing.T) {
	t.Parallel()
	tc := newTestConsole(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tc.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitFor(t, "Run's first snapshot", func() bool { return len(tc.view.Changed()) == 0 && tc.runStarted() })

	tc.clock.add(time.Minute)
	tc.view.update(func(v *fakeView) { // a2 dies: its lease expires, its partition has no leader
		v.agents = v.agents[:1:1]
		v.agents = append(v.agents, newFakeView().agents[2])
		v.st.Agents = []coord.AgentStatus{v.st.Agents[0], v.st.Agents[2]}
		v.st.Partitions[2].Leader = nil
	})
	waitFor(t, "the departure", func() bool { return len(tc.events.recent()) == 1 })
	tc.view.update(func(v *fakeView) { // a1 takes it over at a new epoch
		v.st.Partitions[2].Leader, v.st.Partitions[2].Epoch = new("a1"), 5
	})
	waitFor(t, "the failover", func() bool { return len(tc.events.recent()) == 2 })
	tc.view.update(func(v *fakeView) { // a rebalance hands orders/0 from a1, alive, to b1
		v.st.Partitions[1].Leader = nil
	})
	tc.view.update(func(v *fakeView) {
		v.st.Partitions[1].Leader, v.st.Partitions[1].Epoch = new("b1"), 4
	})
	waitFor(t, "the move", func() bool { return len(tc.events.recent()) == 3 })

	evs := tc.events.recent()
	got := []string{}
	for _, e := range evs {
		got = append(got, e.Kind+" "+e.Subject+" "+e.Detail)
	}
	want := []string{"moved orders/0 a1 → b1, epoch 3 → 4", "failover orders/1 a2 → a1, epoch 4 → 5", "agent left a2 zone az2, group default"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	_, body := tc.get(t, "/")
	contains(t, "/", body, `<tr data-agent="a2" class="down">`, "down since 01:17:40", `<b id="agents-up">2</b>`, `<b id="agents-down">1</b>`)
	_, body = tc.get(t, "/failovers")
	contains(t, "/failovers", body, "a2 → a1, epoch 4 → 5", "agent left",
		"This agent's view since it started at 01:16:40 UTC", "the latest 3 of at most 200 events")

	tc.clock.add(DefaultGoneFor + time.Second)
	_, body = tc.get(t, "/")
	if strings.Contains(body, `data-agent="a2"`) {
		t.Errorf("a2 still listed %v after it left", DefaultGoneFor)
	}
}

// The ring keeps the latest events only.
func TestEventsRing(t *testing.T) {
	t.Parallel()
	e := newEvents(3, time.Minute)
	for i := range 5 {
		e.add(event{Subject: string(rune('a' + i))})
	}
	got := ""
	for _, ev := range e.recent() {
		got += ev.Subject
	}
	if got != "edc" {
		t.Errorf("recent = %q, want edc", got)
	}
}

// The agents that left are forgotten goneFor after they left at the next change, whether or not a page
// asks: an agent watching a fleet that churns through agent ids for months holds no more than goneFor's.
func TestEventsForgetDeparted(t *testing.T) {
	t.Parallel()
	e := newEvents(3, time.Minute)
	last := map[string]leaderAt{}
	at := time.Unix(0, 0)
	for i := range 10 {
		id := fmt.Sprintf("a%d", i)
		prev := snapshot{agents: map[string]coord.AgentInfo{id: {ID: id}}}
		e.diff(prev, snapshot{agents: map[string]coord.AgentInfo{}}, last, at)
		at = at.Add(45 * time.Second)
	}
	e.mu.Lock()
	n := len(e.gone)
	e.mu.Unlock()
	if n != 2 { // left 45 s and 0 s before the last change
		t.Errorf("%d departed agents kept, want 2", n)
	}
	if got := len(e.recent()); got != 3 {
		t.Errorf("%d events kept, want the ring's 3", got)
	}
}
