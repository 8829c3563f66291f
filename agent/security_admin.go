package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleSecurityAdmin answers the security administration APIs: ACLs (CreateAcls, DescribeAcls,
// DeleteAcls), SCRAM credentials (KIP-554) and client quotas (KIP-546). Each checks its own
// cluster permission; the state is etcd's, the answers read the watched view.
func (a *Agent) handleSecurityAdmin(ctx context.Context, c client, req kmsg.Request) (kmsg.Response, bool) {
	switch req := req.(type) {
	case *kmsg.CreateACLsRequest:
		return a.handleCreateACLs(ctx, c, req), true
	case *kmsg.DescribeACLsRequest:
		return a.handleDescribeACLs(ctx, c, req), true
	case *kmsg.DeleteACLsRequest:
		return a.handleDeleteACLs(ctx, c, req), true
	case *kmsg.DescribeUserSCRAMCredentialsRequest:
		return a.handleDescribeUserSCRAMCredentials(ctx, c, req), true
	case *kmsg.AlterUserSCRAMCredentialsRequest:
		return a.handleAlterUserSCRAMCredentials(ctx, c, req), true
	case *kmsg.DescribeClientQuotasRequest:
		return a.handleDescribeClientQuotas(ctx, c, req), true
	case *kmsg.AlterClientQuotasRequest:
		return a.handleAlterClientQuotas(ctx, c, req), true
	}
	return nil, false
}
