package fault

import (
	"context"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/proxy"
	"github.com/streamhouse/streamhouse/e2e/chaos/s3fault"
)

// Fault is one kind of failure.
type Fault interface {
	// Name is the fault's kind, the same for every instance: "agent-kill".
	Name() string
	// String says what this instance does: "agent-kill a2".
	String() string
	// Inject breaks something; it returns once the failure is in effect.
	Inject(ctx context.Context, c Cluster) error
	// Heal undoes Inject; it returns once whatever Inject stopped runs again (not once the cluster
	// has recovered: the runner waits for that).
	Heal(ctx context.Context, c Cluster) error
}

// Reporter is a fault that measured something while it ran (the thundering herd's reconnection).
type Reporter interface {
	Report() string
}

// Cluster is what faults act on; package cluster implements it.
type Cluster interface {
	Agents() []string
	Brokers() []string
	LeaseTTL() time.Duration
	KillAgent(id string) error
	StopAgent(ctx context.Context, id string) error
	StartAgent(ctx context.Context, id string) error
	PauseAgent(id string) error
	ResumeAgent(id string) error
	AddAgent(ctx context.Context) (string, error)
	RemoveAgent(ctx context.Context, id string) error
	SetEtcdLink(id string, m proxy.Mode) error
	SetS3Link(id string, m proxy.Mode) error
	SetS3Rule(r s3fault.Rule) error
	Members() []string
	EtcdLeader(ctx context.Context) (string, error)
	KillMember(name string) error
	StartMember(ctx context.Context, name string) error
	RaiseEtcdAlarm(ctx context.Context) (member string, err error)
	DisarmEtcdAlarms(ctx context.Context) error
	WaitHealthy(ctx context.Context) error
}

// Names of the faults, in the order of a report.
const (
	NameAgentKill      = "agent-kill"
	NameAgentPause     = "agent-pause"
	NameEtcdPartition  = "etcd-partition"
	NameEtcdLatency    = "etcd-latency"
	NameS3Partition    = "s3-partition"
	NameS3Errors       = "s3-errors"
	NameS3Latency      = "s3-latency"
	NameMemberKill     = "etcd-member-kill"
	NameLeaderKill     = "etcd-leader-kill"
	NameEtcdNoSpace    = "etcd-nospace"
	NameRollingRestart = "rolling-restart"
	NameHerd           = "thundering-herd"
	NameAddRemove      = "agent-add-remove"
	NameHostile        = "hostile-client"
)

// Names lists every fault kind.
var Names = []string{NameAgentKill, NameAgentPause, NameEtcdPartition, NameEtcdLatency, NameS3Partition,
	NameS3Errors, NameS3Latency, NameMemberKill, NameLeaderKill, NameEtcdNoSpace, NameRollingRestart, NameHerd,
	NameAddRemove, NameHostile}
