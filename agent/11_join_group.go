package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/group"
)

// JoinGroup: v0-9
//
// The classic group protocol (agent/internal/group/group_join.go). A join is parked until the join phase completes: when
// every member has rejoined, or at the largest rebalance timeout among them. Session timeouts must lie
// within [6s, 30m], Kafka's group.min/max.session.timeout.ms.
//
// Version notes:
// * v1: RebalanceTimeoutMillis (v0: the session timeout)
// * v2: ThrottleMillis
// * v4: a first join without member id gets MEMBER_ID_REQUIRED and an id to rejoin with (KIP-394)
// * v5: InstanceID, static membership (KIP-345)
// * v6: flexible versions
// * v7: ProtocolType in the response
// * v8: Reason (logged by nobody)
// * v9: SkipAssignment: a static leader rejoining a Stable group keeps the assignment (KIP-814)

func (a *Agent) handleJoinGroup(ctx context.Context, c client, req *kmsg.JoinGroupRequest) kmsg.Response {
	return a.groups.JoinGroup(ctx, group.Client{ID: c.id, Remote: c.remote}, req)
}
