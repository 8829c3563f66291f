package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
)

// DescribeAcls: v0-3
//
// Needs Describe on the cluster (CLUSTER_AUTHORIZATION_FAILED). Answers the bindings of the watched
// view that pass the filter, grouped by resource pattern as Kafka groups them.
//
// Version notes:
// * v1: ResourcePatternType (v0: literal bindings only)
// * v2: flexible versions

func (a *Agent) handleDescribeACLs(ctx context.Context, c client, req *kmsg.DescribeACLsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeACLsResponse)
	if !a.allowedCluster(c, auth.OpDescribe) {
		resp.ErrorCode = clusterDenied
		return resp
	}
	f := aclFilter(req.Version, req.ResourceType, req.ResourcePatternType, req.ResourceName, req.Principal, req.Host,
		req.Operation, req.PermissionType)
	if err := f.Validate(); err != nil {
		resp.ErrorCode, resp.ErrorMessage = kerr.InvalidRequest.Code, ptr(err.Error())
		return resp
	}
	type pattern struct {
		rt   auth.ResourceType
		pt   auth.PatternType
		name string
	}
	idx := map[pattern]int{}
	for _, acl := range a.storedACLs() {
		if !f.Matches(acl) {
			continue
		}
		k := pattern{acl.ResourceType, acl.PatternType, acl.Name}
		i, ok := idx[k]
		if !ok {
			r := kmsg.NewDescribeACLsResponseResource()
			r.ResourceType, r.ResourcePatternType, r.ResourceName = kmsg.ACLResourceType(k.rt), kmsg.ACLResourcePatternType(k.pt), k.name
			i = len(resp.Resources)
			idx[k] = i
			resp.Resources = append(resp.Resources, r)
		}
		d := kmsg.NewDescribeACLsResponseResourceACL()
		d.Principal, d.Host, d.Operation, d.PermissionType = acl.Principal.String(), acl.Host, kmsg.ACLOperation(acl.Operation),
			kmsg.ACLPermissionType(acl.Permission)
		resp.Resources[i].ACLs = append(resp.Resources[i].ACLs, d)
	}
	return resp
}

// storedACLs are the bindings of the watched view that decode.
func (a *Agent) storedACLs() []auth.ACL {
	var out []auth.ACL
	for _, b := range a.cache.ACLs() {
		if acl, err := auth.FromBinding(b); err == nil {
			out = append(out, acl)
		}
	}
	return out
}

// aclFilter reads a DescribeAcls or DeleteAcls filter; v0 knows literal bindings only.
func aclFilter(version int16, rt kmsg.ACLResourceType, pt kmsg.ACLResourcePatternType, name, principal, host *string,
	op kmsg.ACLOperation, perm kmsg.ACLPermissionType) auth.ACLFilter {
	f := auth.ACLFilter{ResourceType: auth.ResourceType(rt), PatternType: auth.PatternType(pt), Operation: auth.Operation(op),
		Permission: auth.Permission(perm)}
	if version == 0 {
		f.PatternType = auth.PatternLiteral
	}
	if name != nil {
		f.Name = *name
	}
	if principal != nil {
		f.Principal = *principal
	}
	if host != nil {
		f.Host = *host
	}
	return f
}
