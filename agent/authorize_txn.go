package agent

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/group"
	"github.com/streamhouse/streamhouse/auth"
)

// authorizeDescribeProducers needs Read on each topic, as Kafka's KafkaApis asks; a refused topic's
// partitions answer TOPIC_AUTHORIZATION_FAILED.
func (a *Agent) authorizeDescribeProducers(c client, r *kmsg.DescribeProducersRequest) func(kmsg.Response) {
	return refuseDenied(&r.Topics, func(t kmsg.DescribeProducersRequestTopic) bool { return a.allowedTopic(c, auth.OpRead, t.Topic) },
		func(resp kmsg.Response, t kmsg.DescribeProducersRequestTopic) {
			dr := resp.(*kmsg.DescribeProducersResponse)
			rt := kmsg.NewDescribeProducersResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewDescribeProducersResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p, topicDenied
				rt.Partitions = append(rt.Partitions, sp)
			}
			dr.Topics = append(dr.Topics, rt)
		})
}

// The transaction APIs are authorized as Kafka's KafkaApis does (before KIP-890's v4+): Write on the
// transactional id for every request a transactional producer makes (InitProducerID with an id,
// Produce with one, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit), refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED; then Write on each topic added to a transaction, Read on the
// group whose offsets it commits and on their topics; Describe on a transactional id to describe or
// list it.

func (a *Agent) allowedTxnID(c client, op auth.Operation, id string) bool {
	return a.allowed(c, op, auth.ResourceTransactionalID, id)
}

// authorizeTxnRequest authorizes the transaction APIs; ok is false for any other request.
func (a *Agent) authorizeTxnRequest(c client, req kmsg.Request) (deny kmsg.Response, post func(kmsg.Response), ok bool) {
	switch r := req.(type) {
	case *kmsg.AddPartitionsToTxnRequest:
		return a.authorizeAddPartitionsToTxn(c, r), nil, true
	case *kmsg.AddOffsetsToTxnRequest:
		resp := r.ResponseKind().(*kmsg.AddOffsetsToTxnResponse)
		switch {
		case !a.allowedTxnID(c, auth.OpWrite, r.TransactionalID):
			resp.ErrorCode = kerrTxnDenied
		case !a.allowedGroup(c, auth.OpRead, r.Group):
			resp.ErrorCode = groupDenied
		default:
			return nil, nil, true
		}
		return resp, nil, true
	case *kmsg.EndTxnRequest:
		if !a.allowedTxnID(c, auth.OpWrite, r.TransactionalID) {
			resp := r.ResponseKind().(*kmsg.EndTxnResponse)
			resp.ErrorCode = kerrTxnDenied
			return resp, nil, true
		}
		return nil, nil, true
	case *kmsg.TxnOffsetCommitRequest:
		deny, post = a.authorizeTxnOffsetCommit(c, r)
		return deny, post, true
	case *kmsg.DescribeTransactionsRequest:
		return nil, a.authorizeDescribeTransactions(c, r), true
	case *kmsg.ListTransactionsRequest:
		return nil, func(resp kmsg.Response) {
			lr := resp.(*kmsg.ListTransactionsResponse)
			lr.TransactionStates = slices.DeleteFunc(lr.TransactionStates, func(s kmsg.ListTransactionsResponseTransactionState) bool {
				return !a.allowedTxnID(c, auth.OpDescribe, s.TransactionalID)
			})
		}, true
	}
	return nil, nil, false
}

// authorizeInitProducerID: Write on the transactional id when there is one; otherwise, for an
// idempotent producer, IdempotentWrite on the cluster or Write on some topic.
func (a *Agent) authorizeInitProducerID(c client, r *kmsg.InitProducerIDRequest) kmsg.Response {
	code := int16(0)
	switch {
	case r.TransactionalID != nil:
		if !a.allowedTxnID(c, auth.OpWrite, *r.TransactionalID) {
			code = kerrTxnDenied
		}
	case !a.allowedCluster(c, auth.OpIdempotentWrite) &&
		!a.sec.authz.AuthorizeByResourceType(c.sec.who(), c.sec.hostAddr(), auth.OpWrite, auth.ResourceTopic):
		code = clusterDenied
	}
	if code == 0 {
		return nil
	}
	resp := r.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ErrorCode, resp.ProducerID, resp.ProducerEpoch = code, -1, -1
	return resp
}

// authorizeAddPartitionsToTxn: Write on the transactional id, else every partition answers
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED; Write on every topic, else the request is not sent to the
// coordinator: refused topics answer TOPIC_AUTHORIZATION_FAILED, unknown partitions
// UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED.
func (a *Agent) authorizeAddPartitionsToTxn(c client, r *kmsg.AddPartitionsToTxnRequest) kmsg.Response {
	idOK := a.allowedTxnID(c, auth.OpWrite, r.TransactionalID)
	denied := map[string]bool{}
	for _, t := range r.Topics {
		if idOK && !a.allowedTopic(c, auth.OpWrite, t.Topic) {
			denied[t.Topic] = true
		}
	}
	if idOK && len(denied) == 0 {
		return nil
	}
	resp := r.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, t := range r.Topics {
		st := kmsg.NewAddPartitionsToTxnResponseTopic()
		st.Topic = t.Topic
		known, ok := a.cache.Topic(t.Topic)
		for _, p := range t.Partitions {
			sp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
			sp.Partition = p
			switch {
			case !idOK:
				sp.ErrorCode = kerrTxnDenied
			case denied[t.Topic]:
				sp.ErrorCode = topicDenied
			case !ok || p < 0 || p >= known.Partitions:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			default:
				sp.ErrorCode = kerr.OperationNotAttempted.Code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// authorizeTxnOffsetCommit: Write on the transactional id, then Read on the group (else every
// partition answers the refusal), then Read on each topic (a refused topic's partitions answer
// TOPIC_AUTHORIZATION_FAILED, the others are committed).
func (a *Agent) authorizeTxnOffsetCommit(c client, r *kmsg.TxnOffsetCommitRequest) (kmsg.Response, func(kmsg.Response)) {
	code := int16(0)
	switch {
	case !a.allowedTxnID(c, auth.OpWrite, r.TransactionalID):
		code = kerrTxnDenied
	case !a.allowedGroup(c, auth.OpRead, r.Group):
		code = groupDenied
	}
	if code != 0 {
		resp := r.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
		group.AnswerTxnOffsets(resp, r.Topics, code)
		return resp, nil
	}
	return nil, refuseDenied(&r.Topics, func(t kmsg.TxnOffsetCommitRequestTopic) bool { return a.allowedTopic(c, auth.OpRead, t.Topic) },
		func(resp kmsg.Response, t kmsg.TxnOffsetCommitRequestTopic) {
			group.AnswerTxnOffsets(resp.(*kmsg.TxnOffsetCommitResponse), []kmsg.TxnOffsetCommitRequestTopic{t}, topicDenied)
		})
}

// authorizeDescribeTransactions: Describe on each transactional id, else it answers
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED (and is not looked up).
func (a *Agent) authorizeDescribeTransactions(c client, r *kmsg.DescribeTransactionsRequest) func(kmsg.Response) {
	return refuseDenied(&r.TransactionalIDs, func(id string) bool { return a.allowedTxnID(c, auth.OpDescribe, id) },
		func(resp kmsg.Response, id string) {
			dr := resp.(*kmsg.DescribeTransactionsResponse)
			st := kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID, st.ErrorCode, st.ProducerID, st.ProducerEpoch = id, kerrTxnDenied, -1, -1
			dr.TransactionStates = append(dr.TransactionStates, st)
		})
}

// authorizeTransactionalProduce: a Produce with a transactional id needs Write on it, else every
// partition answers TRANSACTIONAL_ID_AUTHORIZATION_FAILED (Kafka refuses the whole request).
func (a *Agent) authorizeTransactionalProduce(c client, r *kmsg.ProduceRequest) (func(kmsg.Response), bool) {
	if r.TransactionID == nil || a.allowedTxnID(c, auth.OpWrite, *r.TransactionID) {
		return nil, false
	}
	return refuseDenied(&r.Topics, func(kmsg.ProduceRequestTopic) bool { return false }, refuseProduceTopic(kerrTxnDenied)), true
}
