package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// CreateAcls: v0-3
//
// Needs Alter on the cluster. Each binding is validated as Kafka does (INVALID_REQUEST with why) and
// the valid ones stored in etcd in one write (acls/<id>; creating one that exists is a no-op); every
// agent's authorizer sees them once its watch delivers them.
//
// Version notes:
// * v1: ResourcePatternType (v0: literal)
// * v2: flexible versions

func (a *Agent) handleCreateACLs(ctx context.Context, c client, req *kmsg.CreateACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.CreateACLsResponse)
	allowed := a.allowedCluster(c, auth.OpAlter)
	var bindings []coord.ACLBinding
	var stored []int // the results of bindings
	for _, cr := range req.Creations {
		res := kmsg.NewCreateACLsResponseResult()
		acl := auth.ACL{ResourceType: auth.ResourceType(cr.ResourceType), PatternType: auth.PatternType(cr.ResourcePatternType),
			Name: cr.ResourceName, Host: cr.Host, Operation: auth.Operation(cr.Operation), Permission: auth.Permission(cr.PermissionType)}
		if req.Version == 0 {
			acl.PatternType = auth.PatternLiteral
		}
		p, err := auth.ParsePrincipal(cr.Principal)
		acl.Principal = p
		if err == nil {
			err = acl.Validate()
		}
		switch {
		case !allowed:
			res.ErrorCode = clusterDenied
		case err != nil:
			res.ErrorCode, res.ErrorMessage = kerr.InvalidRequest.Code, ptr(err.Error())
		default:
			bindings = append(bindings, acl.Binding())
			stored = append(stored, len(resp.Results))
		}
		resp.Results = append(resp.Results, res)
	}
	if len(bindings) > 0 {
		if err := a.etcd.PutACLs(ctx, bindings); err != nil {
			a.log.Warn("CreateAcls: storing bindings failed", "error", err)
			for _, i := range stored {
				resp.Results[i].ErrorCode, resp.Results[i].ErrorMessage = kerr.UnknownServerError.Code, ptr("storing the ACLs in etcd failed")
			}
		} else {
			a.log.Info("ACLs created", "principal", c.sec.who().String(), "count", len(bindings))
		}
	}
	return resp
}

func ptr[T any](v T) *T { return &v }
