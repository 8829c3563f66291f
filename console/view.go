package console

import (
	"context"

	"github.com/streamhouse/streamhouse/coord"
)

// View is the watched etcd view the console reads; coord.Cache is one.
type View interface {
	// Status is the cluster at the view's revision: agents, and every partition's leader and log.
	Status() coord.ClusterStatus
	// Agents are the live agents' registrations (zone, group, version, start time).
	Agents() []coord.AgentInfo
	// Topics are the topics, sorted by name (for topic ids in group offsets).
	Topics() []coord.Topic
	// Changed is closed when topics, agents or leaders change.
	Changed() <-chan struct{}
	// Revision is the etcd revision the view reflects.
	Revision() int64
}

// GroupStore reads consumer groups as their coordinators persisted them; coord.Client is one.
type GroupStore interface {
	LoadGroups(ctx context.Context, ns string, keep func(group string) bool) ([]coord.GroupSnapshot, error)
}
