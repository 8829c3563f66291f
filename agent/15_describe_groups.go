package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DescribeGroups: v0-5
//
// A group's state, protocol and members, from its coordinator; other agents answer NOT_COORDINATOR.
// As in Kafka, the protocol and each member's metadata and assignment are shown only in Stable, and
// a group that does not exist is reported as Dead. Authorized operations are not reported.
//
// Version notes:
// * v1: ThrottleMillis
// * v3: IncludeAuthorizedOperations
// * v4: InstanceID of members (KIP-345)
// * v5: flexible versions

func (a *Agent) handleDescribeGroups(ctx context.Context, c client, req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, name := range req.Groups {
		sg := kmsg.NewDescribeGroupsResponseGroup()
		sg.Group = name
		sg.State = groupDead.String()
		sg.ErrorCode = a.groups.withGroup(ctx, name, false, func(g *group) {
			if g != nil {
				g.describe(&sg)
			}
		})
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
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
