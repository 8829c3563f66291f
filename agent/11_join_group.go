package agent

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// JoinGroup: v0-9
//
// The classic group protocol (group_join.go). A join is parked until the join phase completes: when
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
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	if e := a.groups.checkJoin(req); e != nil {
		resp.ErrorCode = e.Code
		return resp
	}
	var out kmsg.Response
	var w waiter
	if code := a.groups.withGroup(ctx, req.Group, true, func(g *group) { out, w = g.join(req, c) }); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if w != nil {
		return awaitGroup(ctx, w)
	}
	return out
}

// checkJoin applies the rules a join must pass before its group is looked at.
func (gc *groupCoordinator) checkJoin(req *kmsg.JoinGroupRequest) *kerr.Error {
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	switch {
	case req.Group == "":
		return kerr.InvalidGroupID
	case session < gc.cfg.minSession || session > gc.cfg.maxSession:
		return kerr.InvalidSessionTimeout
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		return kerr.InconsistentGroupProtocol
	}
	return nil
}

// awaitGroup waits for the answer to a parked request. A connection that closes meanwhile gets none;
// the group goes on without it (the member's session or rebalance timeout will tell).
func awaitGroup(ctx context.Context, w waiter) kmsg.Response {
	select {
	case r := <-w:
		return r
	case <-ctx.Done():
		return nil
	}
}
