package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// OffsetFetch: v0-8
//
// Committed offsets by topic name, from the coordinator's memory (loaded from etcd when it took the
// group's shard). A partition without a committed offset, of a group or a topic that does not exist,
// answers offset -1. Offsets are kept by topic id: those of a deleted topic are not reported, and a
// topic created again under the same name starts without offsets. Offsets committed in an open
// transaction (TxnOffsetCommit, with Config.Transactions) are not reported; with
// RequireStable their partitions answer UNSTABLE_OFFSET_COMMIT until the transaction ends.
//
// Version notes:
// * v1: offsets stored in the coordinator rather than ZooKeeper (the only kind here)
// * v2: null topics mean every committed offset; a group-level ErrorCode
// * v3: ThrottleMillis
// * v5: LeaderEpoch of each offset (KIP-320)
// * v6: flexible versions
// * v7: RequireStable (KIP-447)
// * v8: several groups in one request (KIP-709)

func (a *Agent) handleOffsetFetch(ctx context.Context, c client, req *kmsg.OffsetFetchRequest) kmsg.Response {
	return a.groups.OffsetFetch(ctx, req)
}
