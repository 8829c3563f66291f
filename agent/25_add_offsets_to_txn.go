package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/txn"
)

// AddOffsetsToTxn: v0-3, with Config.Transactions only (see txn.go)
//
// Sent to the transactional id's coordinator: adds a consumer group to the producer's transaction, so
// that the group's coordinator resolves its pending offsets when the transaction ends.
//
// Version notes:
// * v1: no changes
// * v2: PRODUCER_FENCED (KIP-588; INVALID_PRODUCER_EPOCH before)
// * v3: flexible versions

func (a *Agent) handleAddOffsetsToTxn(ctx context.Context, req *kmsg.AddOffsetsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
	err := a.txns.AddOffsets(ctx, req.TransactionalID, txn.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}, req.Group)
	resp.ErrorCode = txnCode(err, req.Version, 2)
	return resp
}
