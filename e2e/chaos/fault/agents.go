package fault

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/workload"
)

// AgentKill kills an agent with SIGKILL (a crash, the OOM killer, a lost host) and starts it again
// on its addresses when healed. Its partitions move once its lease expires.
type AgentKill struct{ Agent string }

func (f *AgentKill) Name() string   { return NameAgentKill }
func (f *AgentKill) String() string { return fmt.Sprintf("%s %s", NameAgentKill, f.Agent) }
func (f *AgentKill) Inject(ctx context.Context, c Cluster) error {
	return c.KillAgent(f.Agent)
}
func (f *AgentKill) Heal(ctx context.Context, c Cluster) error { return c.StartAgent(ctx, f.Agent) }

// AgentPause stops an agent with SIGSTOP (a GC pause, a frozen VM) for longer than its lease TTL,
// and continues it with SIGCONT: a zombie that believes it still leads, whose writes must all be
// fenced.
type AgentPause struct{ Agent string }

func (f *AgentPause) Name() string   { return NameAgentPause }
func (f *AgentPause) String() string { return fmt.Sprintf("%s %s", NameAgentPause, f.Agent) }
func (f *AgentPause) Inject(ctx context.Context, c Cluster) error {
	return c.PauseAgent(f.Agent)
}
func (f *AgentPause) Heal(ctx context.Context, c Cluster) error { return c.ResumeAgent(f.Agent) }

// RollingRestart restarts every agent in turn with SIGTERM, as a deploy does, waiting for the
// cluster to be healthy before the next. Each must hand its partitions over and exit 0.
type RollingRestart struct{}

func (f *RollingRestart) Name() string   { return NameRollingRestart }
func (f *RollingRestart) String() string { return NameRollingRestart }
func (f *RollingRestart) Inject(ctx context.Context, c Cluster) error {
	for _, id := range c.Agents() {
		if err := c.StopAgent(ctx, id); err != nil {
			return err
		}
		if err := c.StartAgent(ctx, id); err != nil {
			return err
		}
		if err := c.WaitHealthy(ctx); err != nil {
			return fmt.Errorf("after restarting %s: %w", id, err)
		}
	}
	return nil
}
func (f *RollingRestart) Heal(ctx context.Context, c Cluster) error { return nil }

// AddRemove adds an agent with a new id, which takes over a share of the partitions, and removes it
// (SIGTERM) when healed, which hands them back.
type AddRemove struct{ added string }

func (f *AddRemove) Name() string { return NameAddRemove }
func (f *AddRemove) String() string {
	if f.added != "" {
		return fmt.Sprintf("%s %s", NameAddRemove, f.added)
	}
	return NameAddRemove
}
func (f *AddRemove) Inject(ctx context.Context, c Cluster) error {
	id, err := c.AddAgent(ctx)
	f.added = id
	return err
}
func (f *AddRemove) Heal(ctx context.Context, c Cluster) error {
	if f.added == "" {
		return errors.New("no agent was added")
	}
	return c.RemoveAgent(ctx, f.added)
}

// herd is what ThunderingHerd needs of its clients (workload.Herd).
type herd interface {
	WaitAnswered(ctx context.Context, since time.Time) (time.Duration, error)
	Close()
}

// startHerd starts the herd's clients; tests replace it.
var startHerd = func(ctx context.Context, seeds []string, n int) (herd, error) {
	return workload.StartHerd(ctx, seeds, n)
}

// herdReconnectTimeout bounds the wait for every herd client to be answered again.
const herdReconnectTimeout = 60 * time.Second

// ThunderingHerd connects Conns clients, then kills every agent at once (SIGKILL) and starts them
// all again at once while the clients reconnect. Healing waits until every client is answered
// again and reports how long the last one took.
type ThunderingHerd struct {
	Conns int

	herd      herd
	restarted time.Time
	reconnect time.Duration
}

func (f *ThunderingHerd) Name() string { return NameHerd }
func (f *ThunderingHerd) String() string {
	return fmt.Sprintf("%s: every agent killed and restarted at once, %d clients", NameHerd, f.Conns)
}
func (f *ThunderingHerd) Inject(ctx context.Context, c Cluster) error {
	h, err := startHerd(ctx, c.Brokers(), f.Conns)
	if err != nil {
		return fmt.Errorf("herd: %w", err)
	}
	f.herd = h
	agents := c.Agents()
	if err := all(agents, func(id string) error { return c.KillAgent(id) }); err != nil {
		return err
	}
	f.restarted = time.Now()
	return all(agents, func(id string) error { return c.StartAgent(ctx, id) })
}
func (f *ThunderingHerd) Heal(ctx context.Context, c Cluster) error {
	if f.herd == nil {
		return errors.New("no herd")
	}
	defer f.herd.Close()
	ctx, cancel := context.WithTimeout(ctx, herdReconnectTimeout)
	defer cancel()
	d, err := f.herd.WaitAnswered(ctx, f.restarted)
	f.reconnect = d
	return err
}

// Report says how long the last client took to be answered after the agents were started.
func (f *ThunderingHerd) Report() string {
	return fmt.Sprintf("all %d clients answered again %v after the restart began", f.Conns, f.reconnect.Round(time.Millisecond))
}

// all runs fn for every id at once and joins the errors.
func all(ids []string, fn func(string) error) error {
	errs := make([]error, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() { errs[i] = fn(id) })
	}
	wg.Wait()
	return errors.Join(errs...)
}
