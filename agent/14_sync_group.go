package agent

import (
	"context"

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
	return a.groups.SyncGroup(ctx, req)
}
