package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ListGroups: v0-4
//
// The groups this agent coordinates (clients ask every broker and merge), in every state, including
// groups that only hold committed offsets. A shard it leads that is still loading is waited for; past
// a few seconds the answer is COORDINATOR_LOAD_IN_PROGRESS, which clients retry, rather than a list
// missing that shard's groups.
//
// Version notes:
// * v1: ThrottleMillis
// * v3: flexible versions
// * v4: StatesFilter and GroupState (KIP-518); states match case-insensitively, as in Kafka

func (a *Agent) handleListGroups(ctx context.Context, c client, req *kmsg.ListGroupsRequest) kmsg.Response {
	return a.groups.ListGroups(ctx, req)
}
