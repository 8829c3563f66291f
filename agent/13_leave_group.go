package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
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
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	var out kmsg.Response
	code := a.groups.withGroup(ctx, req.Group, false, func(g *group) {
		if g != nil {
			out = g.leave(req)
		}
	})
	switch {
	case code != 0:
		resp.ErrorCode = code
	case out != nil:
		return out
	case req.Version < 3:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	default:
		for _, rm := range req.Members {
			lm := kmsg.NewLeaveGroupResponseMember()
			lm.MemberID, lm.InstanceID, lm.ErrorCode = rm.MemberID, rm.InstanceID, kerr.UnknownMemberID.Code
			resp.Members = append(resp.Members, lm)
		}
	}
	return resp
}
