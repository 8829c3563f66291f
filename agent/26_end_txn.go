package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/txn"
)

// EndTxn: v0-3, with Config.Transactions only (see txn.go)
//
// Sent to the transactional id's coordinator: commits or aborts the producer's transaction. The answer
// follows the decision's write to etcd; markers are written after it.
//
// Version notes:
// * v1: no changes
// * v2: PRODUCER_FENCED (KIP-588; INVALID_PRODUCER_EPOCH before)
// * v3: flexible versions
// * v4: TRANSACTION_ABORTABLE; v5: the epoch bumped at each end (KIP-890): not served

func (a *Agent) handleEndTxn(ctx context.Context, req *kmsg.EndTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.EndTxnResponse)
	err := a.txns.EndTxn(ctx, req.TransactionalID, txn.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}, req.Commit)
	resp.ErrorCode = txnCode(err, req.Version, 2)
	return resp
}
