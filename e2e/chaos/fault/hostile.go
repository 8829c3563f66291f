package fault

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamhouse/streamhouse/e2e/chaos/workload"
)

// hostileRun is the bad clients of a HostileClient fault (a *workload.Hostile; tests replace it).
type hostileRun interface {
	Close() error
	Report() string
}

// startHostile starts the bad clients; tests replace it.
var startHostile = func(ctx context.Context, cfg workload.HostileConfig) (hostileRun, error) {
	return workload.StartHostile(ctx, cfg)
}

// hostileQuietTopic is the topic the bad clients' long polls wait on; nothing is written to it.
const hostileQuietTopic = "chaos-hostile-quiet"

// HostileClient runs bad clients against every agent while another fault (During) is in effect:
// connections that stay idle up to each agent's per-address limit, frames begun and never finished,
// fetches that ask to wait forever, batches from made-up producer ids (to Topic, where the checker
// would find any taken), arrays inflated past what decoding may take. Healing heals During, stops
// the bad clients and fails if an agent answered what it never should.
type HostileClient struct {
	During Fault
	Conns  int    // idle connections to each agent
	Topic  string // a workload topic

	run hostileRun
}

func (f *HostileClient) Name() string { return NameHostile }
func (f *HostileClient) String() string {
	return fmt.Sprintf("%s (%d idle connections an agent) during %v", NameHostile, f.Conns, f.During)
}
func (f *HostileClient) Inject(ctx context.Context, c Cluster) error {
	run, err := startHostile(ctx, workload.HostileConfig{Brokers: c.Brokers, IdleConns: f.Conns,
		IdleFrom: "127.0.0.2", From: "127.0.0.3", Topic: f.Topic, Quiet: hostileQuietTopic})
	if err != nil {
		return fmt.Errorf("hostile clients: %w", err)
	}
	f.run = run
	return f.During.Inject(ctx, c)
}
func (f *HostileClient) Heal(ctx context.Context, c Cluster) error {
	err := f.During.Heal(ctx, c)
	if f.run == nil {
		return errors.Join(err, errors.New("no hostile clients"))
	}
	return errors.Join(err, f.run.Close())
}

// Report says what the bad clients sent, and what During measured.
func (f *HostileClient) Report() string {
	rep := "no hostile clients ran"
	if f.run != nil {
		rep = f.run.Report()
	}
	if r, ok := f.During.(Reporter); ok {
		rep += "; " + r.Report()
	}
	return rep
}
