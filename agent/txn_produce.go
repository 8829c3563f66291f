package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// Transactional batches (docs/INTERNALS.md, "Markers", last paragraphs). With
// Config.Transactions a Produce request with a transactional id may carry transactional
// batches; each is accepted only from the producer (id and epoch) that holds the transactional id,
// while its transaction is Ongoing and has the partition (AddPartitionsToTxn answered after its
// write, so a linearizable read sees it). Without that check a zombie's batch sent after its
// transaction ended would open a transaction nobody ends, holding the last stable offset back for
// ever (Kafka's "hanging transactions", KIP-890 part 1).
//
// The agent that takes the Produce request checks (it has the transactional id; a forwarded append
// carries only extents) and records, with the append, the revision of the transactional id's key it
// checked against (txnRev), which a forwarded append carries to the leader. A leader takes a
// forwarded transactional batch only with that revision: the markers compare it with the revision
// of the decision that ended the producer's last transaction on the partition.
//
// Cost: one linearizable etcd read per partition of a transactional Produce request. Reading the
// watched view first (the design's `txns/` in the view) is the follow-up when measured.

// verifyTxnBatch checks a transactional batch of meta for tp against txnID's state and returns the
// revision it checked; nil txnID (a transactional batch in a request without one) is INVALID_RECORD,
// as Kafka answers.
func (a *Agent) verifyTxnBatch(ctx context.Context, txnID *string, tp coord.TP, m kwire.BatchMeta) (int64, error) {
	if txnID == nil {
		return 0, fmt.Errorf("%w: a transactional batch in a request without a transactional id", kwire.ErrBatchInvalid)
	}
	s, ok, err := a.etcd.LoadTxn(ctx, a.cfg.Group, *txnID)
	if err != nil {
		return 0, errStorage // etcd did not answer: the client retries
	}
	return s.Version, txnBatchAllowed(s.Meta, ok, tp, m)
}

// txnBatchAllowed reports why a transactional batch of m for tp is refused by the transactional
// id's state meta (found: ok), or nil. The codes are Kafka's to a producer in each case: another
// producer id is INVALID_PRODUCER_ID_MAPPING, or INVALID_PRODUCER_EPOCH when it is the id before an
// epoch overflow; another epoch is INVALID_PRODUCER_EPOCH (the producer was fenced); a partition
// the transaction does not have, or a transaction that is not Ongoing, INVALID_TXN_STATE.
func txnBatchAllowed(meta coord.TxnMeta, ok bool, tp coord.TP, m kwire.BatchMeta) error {
	switch {
	case !ok:
		return kerr.InvalidProducerIDMapping
	case meta.ProducerID != m.ProducerID && meta.PrevProducerID == m.ProducerID:
		return kerr.InvalidProducerEpoch
	case meta.ProducerID != m.ProducerID:
		return kerr.InvalidProducerIDMapping
	case meta.Epoch != m.ProducerEpoch:
		return kerr.InvalidProducerEpoch
	case meta.State != coord.TxnOngoing || !slices.Contains(meta.Partitions, tp):
		return kerr.InvalidTxnState
	}
	return nil
}

// checkForwardedTxn refuses a forwarded transactional batch that its agent did not verify (no
// revision): only an agent of another configuration sends one.
func checkForwardedTxn(p *pendingAppend) error {
	if p.meta.Transactional && p.txnRev <= 0 {
		return fmt.Errorf("%w: a forwarded transactional batch without its verification", kwire.ErrBatchTransactional)
	}
	return nil
}
