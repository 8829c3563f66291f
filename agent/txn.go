package agent

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/group"
	"github.com/streamhouse/streamhouse/agent/internal/txn"
	"github.com/streamhouse/streamhouse/coord"
)

// Transactions (docs/INTERNALS.md, "Transactions") are served only with
// Config.Transactions: their coordinator (agent/internal/txn) runs on the shards of the
// group coordinators; markers (txn_markers.go), the last stable offset (txn_fetch.go) and
// transactional offsets (txn_offsets.go) complete it. Without the flag the agent answers exactly as
// before: InitProducerID with a transactional id is refused, FindCoordinator for transactions too,
// and the other transaction APIs are neither advertised nor served.

// txnAPIs are the transaction APIs served with the flag, and their versions: those before KIP-890's
// transactions v2 (no transaction.version feature is advertised, so clients do not use those).
var txnAPIs = map[int16]apiRange{
	int16(kmsg.AddPartitionsToTxn):   {0, 3}, // v4 is KIP-890's verification by partition leaders
	int16(kmsg.AddOffsetsToTxn):      {0, 3},
	int16(kmsg.TxnOffsetCommit):      {0, 3}, // v4 is KIP-890's verification
	int16(kmsg.EndTxn):               {0, 3}, // v4 adds TRANSACTION_ABORTABLE, v5 transactions v2
	int16(kmsg.DescribeTransactions): {0, 0},
	int16(kmsg.ListTransactions):     {0, 1}, // v2 is KIP-1152's id pattern
}

// newTxnCoordinator wires the transaction coordinator, or returns nil without the flag.
func newTxnCoordinator(a *Agent) (*txn.Coordinator, error) {
	if !a.cfg.Transactions {
		return nil, nil
	}
	if a.cfg.Registerer != nil {
		a.cfg.Registerer.MustRegister(newLSOCollector(a)) // txn_metrics.go
	}
	return txn.New(txn.Config{
		Registerer: a.cfg.Registerer,
		NS:         a.cfg.Group,
		ShardOf:    a.txnShard,
		Leading: func(tp coord.TP) (int64, bool) {
			if pl := a.lead.leading(tp); pl != nil {
				return pl.epoch, true
			}
			return 0, false
		},
		Shards: func() []coord.TP {
			t, ok := a.cache.Topic(a.groups.Topic())
			if !ok {
				return nil
			}
			tps := make([]coord.TP, t.Partitions)
			for p := range tps {
				tps[p] = t.TP(int32(p))
			}
			return tps
		},
		Store:   a.etcd,
		Markers: txnMarkers{a},
		Log:     a.log.Named("txn"),
	})
}

// txnShard is the shard of a transactional id: the partition of the offsets topic it hashes to, as a
// group id does.
func (a *Agent) txnShard(id string) (coord.TP, bool) {
	t, ok := a.cache.Topic(a.groups.Topic())
	if !ok || t.Partitions <= 0 {
		return coord.TP{}, false
	}
	return t.TP(group.Shard(id, t.Partitions)), true
}

// servesTxnAPI reports whether the agent serves key at version as a transaction API.
func (a *Agent) servesTxnAPI(key, version int16) bool {
	r, ok := txnAPIs[key]
	return a.txns != nil && ok && version >= r.min && version <= r.max
}

// appendTxnAPIs adds the transaction APIs to an ApiVersions answer when they are served.
func (a *Agent) appendTxnAPIs(keys []kmsg.ApiVersionsResponseApiKey) []kmsg.ApiVersionsResponseApiKey {
	if a.txns == nil {
		return keys
	}
	for key, r := range txnAPIs {
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = key, r.min, r.max
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y kmsg.ApiVersionsResponseApiKey) int { return int(x.ApiKey) - int(y.ApiKey) })
	return keys
}

// handleTxn answers the transaction APIs (only decoded when served).
func (a *Agent) handleTxn(ctx context.Context, req kmsg.Request) kmsg.Response {
	switch req := req.(type) {
	case *kmsg.AddPartitionsToTxnRequest:
		return a.handleAddPartitionsToTxn(ctx, req)
	case *kmsg.AddOffsetsToTxnRequest:
		return a.handleAddOffsetsToTxn(ctx, req)
	case *kmsg.EndTxnRequest:
		return a.handleEndTxn(ctx, req)
	case *kmsg.TxnOffsetCommitRequest:
		return a.handleTxnOffsetCommit(ctx, req)
	case *kmsg.DescribeTransactionsRequest:
		return a.handleDescribeTransactions(ctx, req)
	case *kmsg.ListTransactionsRequest:
		return a.handleListTransactions(ctx, req)
	}
	return nil
}

// txnCode is the wire code of a coordinator's answer. PRODUCER_FENCED exists since KIP-588: requests
// of earlier versions (fencedSince) hear INVALID_PRODUCER_EPOCH instead, as Kafka answers them.
func txnCode(err error, version, fencedSince int16) int16 {
	if errors.Is(err, kerr.ProducerFenced) && version < fencedSince {
		return kerr.InvalidProducerEpoch.Code
	}
	return kafkaCode(err)
}

// initTransactionalProducer answers InitProducerID for a transactional id from its coordinator.
// KIP-360's producer (v3+) is named with -1/-1 by a new client.
func (a *Agent) initTransactionalProducer(ctx context.Context, req *kmsg.InitProducerIDRequest, resp *kmsg.InitProducerIDResponse) kmsg.Response {
	given := txn.NoProducer
	if req.Version >= 3 && req.ProducerID >= 0 {
		given = txn.ProducerIDAndEpoch{ID: req.ProducerID, Epoch: req.ProducerEpoch}
	}
	p, err := a.txns.InitProducerID(ctx, *req.TransactionalID, req.TransactionTimeoutMillis, given)
	if err != nil {
		resp.ErrorCode = txnCode(err, req.Version, 4)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = p.ID, p.Epoch
	return resp
}
