package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetDelete: v0
//
// Deletes committed offsets of a group (KIP-496): any of an Empty group's; of a consumer group with
// members, those of topics it does not subscribe to (GROUP_SUBSCRIBED_TO_TOPIC otherwise); none of
// another group with members (NON_EMPTY_GROUP).

func (a *Agent) handleOffsetDelete(ctx context.Context, c client, req *kmsg.OffsetDeleteRequest) kmsg.Response {
	return a.groups.OffsetDelete(ctx, req)
}
