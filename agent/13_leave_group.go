package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// LeaveGroup: v0-5
//
// Members leave at once instead of waiting for their session to expire; the group rebalances. A static
// member is named by its instance id (v3+), which is how its owner removes it for good.
//
// Version notes:
// * v1: ThrottleMillis
// * v3: a batch of members, by member id or instance id (KIP-345); errors per member
// * v4: flexible versions
// * v5: Reason per member

func (a *Agent) handleLeaveGroup(ctx context.Context, c client, req *kmsg.LeaveGroupRequest) kmsg.Response {
	return a.groups.LeaveGroup(ctx, req)
}
