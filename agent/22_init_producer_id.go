package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// InitProducerID: v0-5
//
// Idempotent producers only: each call hands out a new producer id from etcd with epoch 0, as Kafka
// does for a producer without a transactional id (also when it names its previous id and epoch, v3+).
// A transactional id gets TRANSACTIONAL_ID_AUTHORIZATION_FAILED: transactions are not supported, unless
// Config.Transactions (then its coordinator answers: txn.go).
//
// Version notes:
// * v2: flexible versions
// * v3: ProducerID and ProducerEpoch in the request (KIP-360)
// * v4-5: no changes for idempotent producers

func (a *Agent) handleInitProducerID(ctx context.Context, c client, req *kmsg.InitProducerIDRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		if a.txns != nil { // Config.Transactions
			return a.initTransactionalProducer(ctx, req, resp)
		}
		resp.ErrorCode = kerr.TransactionalIDAuthorizationFailed.Code
		return resp
	}
	id, err := a.etcd.AllocateProducerID(ctx)
	if err != nil {
		a.log.Warn("producer id allocation failed", "error", err)
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
