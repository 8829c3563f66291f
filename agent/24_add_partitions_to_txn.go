package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/txn"
	"github.com/streamhouse/streamhouse/coord"
)

// AddPartitionsToTxn: v0-3, with Config.Transactions only (see txn.go)
//
// Sent to the transactional id's coordinator: adds partitions to the producer's transaction, written
// to etcd before the answer. A partition the watched view does not know answers
// UNKNOWN_TOPIC_OR_PARTITION, and then every other one OPERATION_NOT_ATTEMPTED, as Kafka answers.
//
// Version notes:
// * v1: no changes
// * v2: PRODUCER_FENCED (KIP-588; INVALID_PRODUCER_EPOCH before)
// * v3: flexible versions
// * v4+: batched, verify-only requests of partition leaders (KIP-890): not served

func (a *Agent) handleAddPartitionsToTxn(ctx context.Context, req *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	var tps []coord.TP
	unknown := map[string]map[int32]bool{}
	for _, rt := range req.Topics {
		t, ok := a.cache.Topic(rt.Topic)
		for _, p := range rt.Partitions {
			if !ok || p < 0 || p >= t.Partitions {
				if unknown[rt.Topic] == nil {
					unknown[rt.Topic] = map[int32]bool{}
				}
				unknown[rt.Topic][p] = true
				continue
			}
			tps = append(tps, t.TP(p))
		}
	}
	var err error
	switch {
	case len(unknown) > 0:
		err = kerr.OperationNotAttempted
	default:
		err = a.txns.AddPartitions(ctx, req.TransactionalID, txn.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}, tps)
	}
	code := txnCode(err, req.Version, 2)
	for _, rt := range req.Topics {
		st := kmsg.NewAddPartitionsToTxnResponseTopic()
		st.Topic = rt.Topic
		for _, p := range rt.Partitions {
			sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			sp.Partition, sp.ErrorCode = p, code
			if unknown[rt.Topic][p] {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
