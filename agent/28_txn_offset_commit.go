package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TxnOffsetCommit: v0-3, with Config.ExperimentalTransactions only (see txn.go)
//
// Sent to the group's coordinator: the offsets are kept pending for the producer's transaction
// (agent/internal/group/txn_offsets.go), invisible to OffsetFetch until the transaction commits and
// dropped if it aborts. When the transaction coordinator writes a transaction's markers it also has
// the coordinator of each group the transaction added (AddOffsetsToTxn) resolve the producer's
// pending offsets: here when this agent coordinates the group, otherwise over the marker API with
// the group named (txn_marker_api.go). The group's write is guarded by the transaction's state at
// its Prepare write, as a partition's marker is.
//
// Version notes:
// * v1: no changes
// * v2: LeaderEpoch of each offset (KIP-320)
// * v3: Generation, MemberID, InstanceID checked as OffsetCommit's (KIP-447); flexible versions

func (a *Agent) handleTxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
	return a.groups.TxnOffsetCommit(ctx, req)
}
