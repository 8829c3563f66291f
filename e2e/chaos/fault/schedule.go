package fault

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/proxy"
	"github.com/streamhouse/streamhouse/e2e/chaos/s3fault"
)

// Step is one fault of a schedule and how long it stays in effect before it is healed.
type Step struct {
	Fault Fault
	Hold  time.Duration
}

func (s Step) String() string { return fmt.Sprintf("%v for %v", s.Fault, s.Hold) }

// Options are what a schedule draws from.
type Options struct {
	TTL       time.Duration // the agents' lease TTL: faults that must outlast it do
	Agents    []string      // targets of agent faults
	Members   []string      // targets of etcd member faults
	HerdConns int           // clients of the thundering herd
	// HostileConns is the idle connections the hostile clients hold to each agent, and HostileTopic a
	// workload topic they send made-up producer ids to.
	HostileConns int
	HostileTopic string
	Only         []string // fault names to draw from; empty: every fault
}

// Schedule draws faults, their targets, their parameters and how long they last from a seed: the
// same seed gives the same sequence of steps.
type Schedule struct {
	rng   *rand.Rand
	opts  Options
	names []string
}

// NewSchedule returns the schedule of seed; it fails on an unknown name in opts.Only.
func NewSchedule(seed uint64, opts Options) (*Schedule, error) {
	if len(opts.Agents) == 0 || len(opts.Members) == 0 {
		return nil, fmt.Errorf("fault: a schedule needs agents and etcd members")
	}
	names := Names
	if len(opts.Only) > 0 {
		for _, n := range opts.Only {
			if !slices.Contains(Names, n) {
				return nil, fmt.Errorf("fault: unknown fault %q (known: %v)", n, Names)
			}
		}
		names = opts.Only
	}
	return &Schedule{rng: rand.New(rand.NewPCG(seed, 0xfa017)), opts: opts, names: names}, nil
}

// Round is one step of every fault, in a random order.
func (s *Schedule) Round() []Step {
	names := slices.Clone(s.names)
	s.rng.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	steps := make([]Step, len(names))
	for i, n := range names {
		steps[i] = s.step(n)
	}
	return steps
}

// Next is one step of a random fault.
func (s *Schedule) Next() Step { return s.step(s.names[s.rng.IntN(len(s.names))]) }

// between is a random duration in [lo, hi], in 100 ms steps.
func (s *Schedule) between(lo, hi time.Duration) time.Duration {
	steps := int64((hi - lo) / (100 * time.Millisecond))
	return lo + time.Duration(s.rng.Int64N(steps+1))*100*time.Millisecond
}

func (s *Schedule) agent() string { return s.opts.Agents[s.rng.IntN(len(s.opts.Agents))] }

// cut is a mode that breaks a link.
func (s *Schedule) cut() proxy.Mode {
	kinds := []proxy.Kind{proxy.Blackhole, proxy.Reset, proxy.HalfOpen}
	return proxy.Mode{Kind: kinds[s.rng.IntN(len(kinds))]}
}

// step makes one step of the named fault. Faults that only show once a lease expires last longer
// than the TTL.
func (s *Schedule) step(name string) Step {
	ttl := s.opts.TTL
	switch name {
	case NameAgentKill:
		return Step{&AgentKill{Agent: s.agent()}, s.between(ttl+time.Second, ttl+3*time.Second)}
	case NameAgentPause:
		return Step{&AgentPause{Agent: s.agent()}, s.between(ttl+time.Second, ttl+3*time.Second)}
	case NameEtcdPartition:
		return Step{&EtcdPartition{Agent: s.agent(), Mode: s.cut()}, s.between(ttl+time.Second, ttl+3*time.Second)}
	case NameEtcdLatency:
		return Step{&EtcdLatency{Agent: s.agent(), Delay: s.between(100*time.Millisecond, 500*time.Millisecond)},
			s.between(3*time.Second, 6*time.Second)}
	case NameS3Partition:
		return Step{&S3Partition{Agent: s.agent(), Mode: s.cut()}, s.between(2*time.Second, 5*time.Second)}
	case NameS3Errors:
		kind := []s3fault.Kind{s3fault.SlowDown, s3fault.InternalError}[s.rng.IntN(2)]
		share := float64(s.between(2*time.Second, 6*time.Second)) / float64(10*time.Second)
		return Step{&S3Errors{Rule: s3fault.Rule{Share: share, Kind: kind}}, s.between(3*time.Second, 6*time.Second)}
	case NameS3Latency:
		share := float64(s.between(2*time.Second, 6*time.Second)) / float64(10*time.Second)
		rule := s3fault.Rule{Share: share, Kind: s3fault.Stall, Stall: s.between(500*time.Millisecond, 3*time.Second)}
		return Step{&S3Latency{Rule: rule}, s.between(3*time.Second, 6*time.Second)}
	case NameMemberKill:
		return Step{&MemberKill{Pick: s.rng.IntN(len(s.opts.Members))}, s.between(2*time.Second, 5*time.Second)}
	case NameLeaderKill:
		return Step{&LeaderKill{}, s.between(2*time.Second, 5*time.Second)}
	case NameEtcdNoSpace:
		return Step{&EtcdNoSpace{}, s.between(2*time.Second, 6*time.Second)}
	case NameRollingRestart:
		return Step{&RollingRestart{}, 0}
	case NameHerd:
		return Step{&ThunderingHerd{Conns: s.opts.HerdConns}, 0}
	case NameAddRemove:
		return Step{&AddRemove{}, s.between(3*time.Second, 6*time.Second)}
	case NameHostile:
		return s.hostile()
	}
	panic("fault: no step for " + name)
}

// hostile is a HostileClient step during another fault, drawn from the others the schedule has, for
// as long as that fault holds.
func (s *Schedule) hostile() Step {
	others := slices.DeleteFunc(slices.Clone(s.names), func(n string) bool { return n == NameHostile })
	if len(others) == 0 {
		others = slices.DeleteFunc(slices.Clone(Names), func(n string) bool { return n == NameHostile })
	}
	during := s.step(others[s.rng.IntN(len(others))])
	return Step{&HostileClient{During: during.Fault, Conns: s.opts.HostileConns, Topic: s.opts.HostileTopic}, during.Hold}
}
