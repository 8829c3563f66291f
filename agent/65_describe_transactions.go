package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// DescribeTransactions: v0, with Config.Transactions only (see txn.go)
//
// Sent to each transactional id's coordinator (KIP-664): its state, producer, timeout, start time and
// partitions, as this agent's coordinator holds them. An id of a shard this agent does not lead answers
// NOT_COORDINATOR; one without state TRANSACTIONAL_ID_NOT_FOUND.

func (a *Agent) handleDescribeTransactions(ctx context.Context, req *kmsg.DescribeTransactionsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
	for _, id := range req.TransactionalIDs {
		st := kmsg.NewDescribeTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.ProducerEpoch = id, -1, -1
		m, ok, err := a.txns.State(ctx, id)
		switch {
		case err != nil:
			st.ErrorCode = kafkaCode(err)
		case !ok:
			st.ErrorCode = kerr.TransactionalIDNotFound.Code
		default:
			st.State, st.TimeoutMillis, st.StartTimestamp, st.ProducerID, st.ProducerEpoch = m.State, m.TimeoutMs, m.StartMs, m.ProducerID, m.Epoch
			if m.StartMs == 0 {
				st.StartTimestamp = -1
			}
			st.Topics = a.describeTxnTopics(m.Partitions)
		}
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return resp
}

// describeTxnTopics names a transaction's partitions by topic; those of deleted topics are left out.
func (a *Agent) describeTxnTopics(tps []coord.TP) []kmsg.DescribeTransactionsResponseTransactionStateTopic {
	var out []kmsg.DescribeTransactionsResponseTransactionStateTopic
	at := map[coord.TopicID]int{}
	for _, tp := range tps {
		i, ok := at[tp.Topic]
		if !ok {
			t, known := a.cache.TopicByID(tp.Topic)
			if !known {
				continue
			}
			st := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
			st.Topic = t.Name
			i, at[tp.Topic] = len(out), len(out)
			out = append(out, st)
		}
		out[i].Partitions = append(out[i].Partitions, tp.Partition)
	}
	return out
}
