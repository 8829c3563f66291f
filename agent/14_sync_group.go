package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SyncGroup: v0-5
//
// The leader sends the assignment it computed; every member's SyncGroup is parked until then and
// answered with its part. The assignment is persisted before anyone receives it.
//
// Version notes:
// * v1: ThrottleMillis
// * v3: InstanceID (KIP-345)
// * v4: flexible versions
// * v5: ProtocolType and Protocol, checked against the group's (KIP-559)

func (a *Agent) handleSyncGroup(ctx context.Context, c client, req *kmsg.SyncGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	var out kmsg.Response
	var w waiter
	code := a.groups.withGroup(ctx, req.Group, false, func(g *group) {
		if g != nil {
			out, w = g.sync(req)
		}
	})
	switch {
	case code != 0:
		resp.ErrorCode = code
	case w != nil:
		return awaitGroup(ctx, w)
	case out != nil:
		return out
	default:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	}
	return resp
}
