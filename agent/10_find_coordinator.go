package agent

import (
	"context"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/group"
)

// FindCoordinator: v0-6
//
// Any agent answers. A group's coordinator is the leader of the group's shard, a partition of the
// agent group's offsets topic (see agent/internal/group), as the watched view knows it; a shard
// without a live leader of this agent group answers COORDINATOR_NOT_AVAILABLE, which clients retry.
// A missing offsets topic is created again. Transactions are not supported: a transaction
// coordinator is refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED, as transactional produce is, unless
// Config.Transactions: then it is the shard's leader, as for a group.
//
// Version notes:
// * v1: CoordinatorType; ErrorMessage and ThrottleMillis in the response
// * v3: flexible versions
// * v4: batched CoordinatorKeys (KIP-699)
// * v5: TRANSACTION_ABORTABLE (never sent)
// * v6: share coordinators, type 2 (KIP-932): INVALID_REQUEST here

const (
	coordinatorTypeGroup = 0
	coordinatorTypeTxn   = 1
)

func (a *Agent) handleFindCoordinator(ctx context.Context, c client, req *kmsg.FindCoordinatorRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version <= 3 {
		keys = []string{req.CoordinatorKey}
	}
	for _, key := range keys {
		sc := kmsg.NewFindCoordinatorResponseCoordinator()
		sc.Key = key
		if err := a.findCoordinator(c, req.CoordinatorType, key, &sc); err != nil {
			sc.NodeID, sc.Host, sc.Port = -1, "", -1
			sc.ErrorCode = kafkaCode(err)
			msg := err.Error()
			sc.ErrorMessage = &msg
		}
		resp.Coordinators = append(resp.Coordinators, sc)
	}
	if req.Version <= 3 {
		sc := resp.Coordinators[0]
		resp.ErrorCode, resp.ErrorMessage, resp.NodeID, resp.Host, resp.Port = sc.ErrorCode, sc.ErrorMessage, sc.NodeID, sc.Host, sc.Port
		resp.Coordinators = nil
	}
	return resp
}

// findCoordinator fills in the coordinator of key, or returns why there is none.
func (a *Agent) findCoordinator(c client, typ int8, key string, sc *kmsg.FindCoordinatorResponseCoordinator) error {
	switch typ {
	case coordinatorTypeGroup:
	case coordinatorTypeTxn:
		if a.txns == nil { // without Config.Transactions
			return adminErrorf(kerr.TransactionalIDAuthorizationFailed, "transactions are not supported")
		}
		// A transactional id's coordinator is the leader of its shard, as a group's (txn.go).
	default:
		return adminErrorf(kerr.InvalidRequest, "coordinator type %d is not supported", typ)
	}
	t, ok := a.cache.Topic(a.groups.Topic())
	if !ok {
		a.groups.EnsureTopicAsync()
		return adminErrorf(kerr.CoordinatorNotAvailable, "the offsets topic %s is being created", a.groups.Topic())
	}
	shard := group.Shard(key, t.Partitions)
	l, ok := a.cache.Leader(t.TP(shard))
	if ok {
		for _, ag := range a.brokersFor(c) {
			if ag.ID != l.Agent {
				continue
			}
			host, port, err := net.SplitHostPort(ag.Addr)
			if err != nil {
				break
			}
			p, _ := strconv.Atoi(port)
			sc.NodeID, sc.Host, sc.Port = a.nodeID(ag.ID), host, int32(p)
			return nil
		}
	}
	return adminErrorf(kerr.CoordinatorNotAvailable, "shard %d of %s has no live leader", shard, a.groups.Topic())
}
