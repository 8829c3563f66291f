package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// DeleteGroups: v0-2
//
// Deletes Empty groups with their committed offsets (one fenced etcd Txn each). A group with members
// answers NON_EMPTY_GROUP, one that does not exist GROUP_ID_NOT_FOUND.
//
// Version notes:
// * v1: ThrottleMillis semantics (KIP-219)
// * v2: flexible versions

func (a *Agent) handleDeleteGroups(ctx context.Context, c client, req *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, name := range req.Groups {
		sg := kmsg.NewDeleteGroupsResponseGroup()
		sg.Group = name
		sg.ErrorCode = a.groups.DeleteGroup(ctx, name)
		if sg.ErrorCode == 0 {
			a.log.Info("group deleted", "group", name)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}
