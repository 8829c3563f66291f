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
		resp.Groups = append(resp.Groups, a.groups.DescribeGroup(ctx, name))
	}
	return resp
}
