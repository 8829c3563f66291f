package agent

import (
	"context"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// ListTransactions: v0-1, with Config.Transactions only (see txn.go)
//
// Sent to every agent (KIP-664): the transactional ids of the shards this agent leads, filtered by
// state and producer id; states Kafka does not name are reported back as unknown filters.
//
// Version notes:
// * v1: DurationFilterMillis (KIP-994): only transactions running at least that long
// * v2: TransactionalIDPattern (KIP-1152): not served

var txnStates = []string{coord.TxnEmpty, coord.TxnOngoing, coord.TxnPrepareCommit, coord.TxnPrepareAbort,
	coord.TxnCompleteCommit, coord.TxnCompleteAbort, "Dead", "PrepareEpochFence"}

func (a *Agent) handleListTransactions(ctx context.Context, req *kmsg.ListTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	for _, s := range req.StateFilters {
		if !slices.Contains(txnStates, s) {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, s)
		}
	}
	listed, err := a.txns.List(ctx)
	if err != nil {
		resp.ErrorCode = kafkaCode(err)
		return resp
	}
	now := time.Now().UnixMilli()
	for _, l := range listed {
		switch {
		case len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, l.State),
			len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, l.ProducerID),
			req.Version >= 1 && req.DurationFilterMillis >= 0 && (l.State != coord.TxnOngoing || now-l.StartMs < req.DurationFilterMillis):
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = l.ID, l.ProducerID, l.State
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}
