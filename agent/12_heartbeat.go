package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Heartbeat: v0-4
//
// Keeps a member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin, ILLEGAL_GENERATION and
// UNKNOWN_MEMBER_ID that it missed a rebalance or was dropped.
//
// Version notes:
// * v1: ThrottleMillis
// * v3: InstanceID (KIP-345)
// * v4: flexible versions

func (a *Agent) handleHeartbeat(ctx context.Context, c client, req *kmsg.HeartbeatRequest) kmsg.Response {
	return a.groups.Heartbeat(ctx, req)
}
