package group

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The group APIs as the agent's handlers call them (agent/11_join_group.go and the others list what
// each version adds). Each answers from the group's coordinator shard, or with the Kafka error that
// sends the client to find the coordinator again.

// Client is who sent a request: its Kafka client id and remote address.
type Client struct {
	ID     string
	Remote string
}

// JoinGroup joins a member, or parks the join until the group's rebalance completes.
func (gc *Coordinator) JoinGroup(ctx context.Context, c Client, req *kmsg.JoinGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.MemberID = req.MemberID
	if e := gc.checkJoin(req); e != nil {
		resp.ErrorCode = e.Code
		return resp
	}
	var out kmsg.Response
	var w waiter
	if code := gc.withGroup(ctx, req.Group, true, func(g *group) { out, w = g.join(req, c) }); code != 0 {
		resp.ErrorCode = code
		return resp
	}
	if w != nil {
		return awaitGroup(ctx, w)
	}
	return out
}

func (gc *Coordinator) checkJoin(req *kmsg.JoinGroupRequest) *kerr.Error {
	session := time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	switch {
	case req.Group == "":
		return kerr.InvalidGroupID
	case session < gc.cfg.MinSession || session > gc.cfg.MaxSession:
		return kerr.InvalidSessionTimeout
	case req.ProtocolType == "" || len(req.Protocols) == 0:
		return kerr.InconsistentGroupProtocol
	}
	return nil
}

func awaitGroup(ctx context.Context, w waiter) kmsg.Response {
	select {
	case r := <-w:
		return r
	case <-ctx.Done():
		return nil
	}
}

// Heartbeat answers a member's heartbeat.
func (gc *Coordinator) Heartbeat(ctx context.Context, req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	var out kmsg.Response
	code := gc.withGroup(ctx, req.Group, false, func(g *group) {
		if g != nil {
			out = g.heartbeat(req)
		}
	})
	switch {
	case code != 0:
		resp.ErrorCode = code
	case out == nil:
		resp.ErrorCode = kerr.UnknownMemberID.Code
	default:
		return out
	}
	return resp
}

// LeaveGroup removes members from a group.
func (gc *Coordinator) LeaveGroup(ctx context.Context, req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	var out kmsg.Response
	code := gc.withGroup(ctx, req.Group, false, func(g *group) {
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

// SyncGroup takes the leader's assignment, or parks a member's sync until it arrives.
func (gc *Coordinator) SyncGroup(ctx context.Context, req *kmsg.SyncGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	var out kmsg.Response
	var w waiter
	code := gc.withGroup(ctx, req.Group, false, func(g *group) {
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

// DescribeGroup describes one group; one that does not exist is Dead.
func (gc *Coordinator) DescribeGroup(ctx context.Context, name string) kmsg.DescribeGroupsResponseGroup {
	sg := kmsg.NewDescribeGroupsResponseGroup()
	sg.Group = name
	sg.State = groupDead.String()
	sg.ErrorCode = gc.withGroup(ctx, name, false, func(g *group) {
		if g != nil {
			g.describe(&sg)
		}
	})
	return sg
}

func (g *group) describe(out *kmsg.DescribeGroupsResponseGroup) {
	out.State = g.state.String()
	out.ProtocolType = g.protocolType
	stable := g.state == groupStable
	if stable {
		out.Protocol = g.protocol
	}
	for _, m := range g.sortedMembers() {
		dm := kmsg.NewDescribeGroupsResponseGroupMember()
		dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
		if stable {
			dm.ProtocolMetadata, dm.MemberAssignment = m.metadata(g.protocol), m.assignment
		}
		out.Members = append(out.Members, dm)
	}
}

// ListGroups lists the groups of every shard this agent leads, once they are loaded.
func (gc *Coordinator) ListGroups(ctx context.Context, req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	if !gc.loaded(ctx) {
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code
		return resp
	}
	for _, sh := range gc.loadedShards() {
		for _, g := range sh.list() {
			lg := kmsg.NewListGroupsResponseGroup()
			g.mu.Lock()
			gone := g.gone.Load()
			lg.Group, lg.ProtocolType, lg.GroupState = g.name, g.protocolType, g.state.String()
			g.mu.Unlock()
			if gone || (len(req.StatesFilter) > 0 && !slices.ContainsFunc(req.StatesFilter, func(s string) bool {
				return strings.EqualFold(s, lg.GroupState)
			})) {
				continue
			}
			resp.Groups = append(resp.Groups, lg)
		}
	}
	slices.SortFunc(resp.Groups, func(x, y kmsg.ListGroupsResponseGroup) int { return strings.Compare(x.Group, y.Group) })
	return resp
}

// loaded waits, for at most LoadWait, until every shard this agent leads has finished loading.
func (gc *Coordinator) loaded(ctx context.Context) bool {
	gc.sweep() // a shard led since the last sweep starts loading now
	gc.mu.Lock()
	var loading []*shard
	for _, sh := range gc.shards {
		loading = append(loading, sh)
	}
	gc.mu.Unlock()
	wait := time.NewTimer(gc.cfg.LoadWait)
	defer wait.Stop()
	for _, sh := range loading {
		select {
		case <-sh.ready:
		case <-wait.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// DeleteGroup deletes an Empty group with its offsets and returns the Kafka error code (0: deleted).
func (gc *Coordinator) DeleteGroup(ctx context.Context, name string) int16 {
	var code int16
	top := gc.withGroup(ctx, name, false, func(g *group) {
		if g == nil {
			code = kerr.GroupIDNotFound.Code
			return
		}
		code = g.deleteGroup()
	})
	if top != 0 {
		return top
	}
	return code
}
