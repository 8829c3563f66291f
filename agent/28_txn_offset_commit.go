package agent

import (
	"context"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/group"
	"github.com/streamhouse/streamhouse/coord"
)

// TxnOffsetCommit: v0-3, with Config.Transactions only (see txn.go)
//
// Sent to the group's coordinator: the offsets are kept pending for the producer's transaction
// (agent/internal/group/txn_offsets.go), invisible to OffsetFetch until the transaction commits and
// dropped if it aborts. When the transaction coordinator writes a transaction's markers it also has
// the coordinator of each group the transaction added (AddOffsetsToTxn) resolve the producer's
// pending offsets: here when this agent coordinates the group, otherwise over the marker API with
// the group named (txn_marker_api.go). The group's write is guarded by the transaction's state at
// its Prepare write, as a partition's marker is.
//
// The commit is verified first against the transactional id's state (one linearizable etcd read, as
// a transactional batch is; Kafka's KIP-890 verification): the producer's id and epoch, an Ongoing
// transaction that added the group (AddOffsetsToTxn), else INVALID_PRODUCER_ID_MAPPING,
// INVALID_PRODUCER_EPOCH or INVALID_TXN_STATE; and the pending offsets are written guarded by that
// state, so that offsets of a producer that never added the group, or that arrive after the
// transaction was decided (timed out, fenced), are never left pending with nothing to resolve them. A
// state that moved between the read and the write (another AddPartitionsToTxn) is read again once;
// then CONCURRENT_TRANSACTIONS.
//
// Version notes:
// * v1: no changes
// * v2: LeaderEpoch of each offset (KIP-320)
// * v3: Generation, MemberID, InstanceID checked as OffsetCommit's (KIP-447); flexible versions

func (a *Agent) handleTxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) kmsg.Response {
	for attempt := 0; ; attempt++ {
		guard, err := a.verifyTxnOffsets(ctx, req)
		if err != nil {
			return txnOffsetsRefused(req, kafkaCode(err))
		}
		resp := a.groups.TxnOffsetCommit(ctx, req, guard).(*kmsg.TxnOffsetCommitResponse)
		if attempt > 0 || !allTxnOffsets(resp, kerr.ConcurrentTransactions.Code) {
			return resp
		}
	}
}

// verifyTxnOffsets checks req against its transactional id's state and returns that state's guard.
func (a *Agent) verifyTxnOffsets(ctx context.Context, req *kmsg.TxnOffsetCommitRequest) (*coord.TxnGuard, error) {
	s, ok, err := a.etcd.LoadTxn(ctx, a.cfg.Group, req.TransactionalID)
	if err != nil {
		return nil, kerr.CoordinatorNotAvailable // etcd did not answer: the client retries
	}
	m := s.Meta
	switch {
	case !ok:
		return nil, kerr.InvalidProducerIDMapping
	case m.ProducerID != req.ProducerID && m.PrevProducerID == req.ProducerID:
		return nil, kerr.InvalidProducerEpoch
	case m.ProducerID != req.ProducerID:
		return nil, kerr.InvalidProducerIDMapping
	case m.Epoch != req.ProducerEpoch:
		return nil, kerr.InvalidProducerEpoch
	case m.State != coord.TxnOngoing || !slices.Contains(m.Groups, req.Group):
		return nil, kerr.InvalidTxnState
	}
	return &coord.TxnGuard{NS: a.cfg.Group, ID: req.TransactionalID, Version: s.Version}, nil
}

// txnOffsetsRefused answers every partition of req with code.
func txnOffsetsRefused(req *kmsg.TxnOffsetCommitRequest, code int16) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	group.AnswerTxnOffsets(resp, req.Topics, code)
	return resp
}

// allTxnOffsets reports whether every partition of resp (at least one) answered code.
func allTxnOffsets(resp *kmsg.TxnOffsetCommitResponse, code int16) bool {
	n := 0
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != code {
				return false
			}
			n++
		}
	}
	return n > 0
}
