package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// DeleteAcls: v0-3
//
// Needs Alter on the cluster. Each filter's matching bindings, as the watched view has them, are
// deleted from etcd in one write and listed in its result.
//
// Version notes:
// * v1: ResourcePatternType (v0: literal)
// * v2: flexible versions

func (a *Agent) handleDeleteACLs(ctx context.Context, c client, req *kmsg.DeleteACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteACLsResponse)
	allowed := a.allowedCluster(c, auth.OpAlter)
	all := a.storedACLs()
	var doomed []coord.ACLBinding
	seen := map[string]bool{}
	for _, rf := range req.Filters {
		res := kmsg.NewDeleteACLsResponseResult()
		f := aclFilter(req.Version, rf.ResourceType, rf.ResourcePatternType, rf.ResourceName, rf.Principal, rf.Host,
			rf.Operation, rf.PermissionType)
		if !allowed {
			res.ErrorCode = clusterDenied
			resp.Results = append(resp.Results, res)
			continue
		}
		if err := f.Validate(); err != nil {
			res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, ptr(err.Error())
			resp.Results = append(resp.Results, res)
			continue
		}
		for _, acl := range all {
			if !f.Matches(acl) {
				continue
			}
			m := kmsg.NewDeleteACLsResponseResultMatchingACL()
			m.ResourceType, m.ResourceName, m.ResourcePatternType = kmsg.ACLResourceType(acl.ResourceType), acl.Name,
				kmsg.ACLResourcePatternType(acl.PatternType)
			m.Principal, m.Host, m.Operation, m.PermissionType = acl.Principal.String(), acl.Host, kmsg.ACLOperation(acl.Operation),
				kmsg.ACLPermissionType(acl.Permission)
			res.MatchingACLs = append(res.MatchingACLs, m)
			if b := acl.Binding(); !seen[b.ID()] {
				seen[b.ID()] = true
				doomed = append(doomed, b)
			}
		}
		resp.Results = append(resp.Results, res)
	}
	if len(doomed) > 0 {
		if _, err := a.etcd.DeleteACLs(ctx, doomed); err != nil {
			a.log.Warn("DeleteAcls: deleting bindings failed", "error", err)
			for i := range resp.Results {
				if len(resp.Results[i].MatchingACLs) > 0 {
					resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.UnknownServerError.Code, ptr("deleting the ACLs in etcd failed")
					resp.Results[i].MatchingACLs = nil
				}
			}
		} else {
			a.log.Info("ACLs deleted", "principal", c.sec.who().String(), "count", len(doomed))
		}
	}
	return resp
}
