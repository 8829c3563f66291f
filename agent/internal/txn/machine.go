package txn

import (
	"context"
	"math"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// The transitions of Kafka's transaction state machine (KIP-98, KIP-360, KIP-588), each persisted
// before it is answered. Errors are kerr's: PRODUCER_FENCED is answered as Kafka's coordinator answers
// it since KIP-588; the agent's handlers turn it into INVALID_PRODUCER_EPOCH for the versions before.

// ProducerIDAndEpoch is a producer's identity.
type ProducerIDAndEpoch struct {
	ID    int64
	Epoch int16
}

// NoProducer is what a request that names no producer (InitProducerID before v3, or a new client)
// gives.
var NoProducer = ProducerIDAndEpoch{ID: -1, Epoch: -1}

// lock finds id's entry (creating an unwritten one when create) in its shard and locks it. e is nil
// when the id has no state and create is false.
func (c *Coordinator) lock(ctx context.Context, id string, create bool) (*shard, *entry, error) {
	for range 3 { // a shard dropped between the lookup and the lock: look it up again
		sh, err := c.shardFor(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		c.mu.Lock()
		if sh.lost {
			c.mu.Unlock()
			continue
		}
		e := sh.ids[id]
		if e == nil && create {
			e = &entry{id: id}
			sh.ids[id] = e
		}
		c.mu.Unlock()
		if e == nil {
			return sh, nil, nil
		}
		e.mu.Lock()
		if e.dead.Load() {
			e.mu.Unlock()
			continue
		}
		return sh, e, nil
	}
	return nil, nil, kerr.NotCoordinator
}

// InitProducerID gives transactional id id a producer: a new one for an id without state, else the
// same producer id at the next epoch (a new id once the epoch runs out), which fences every older
// producer of the id. An ongoing transaction is aborted first (the call answers
// CONCURRENT_TRANSACTIONS, which clients retry, until the abort completes). given is the producer the
// client had (KIP-360, v3+), or NoProducer.
func (c *Coordinator) InitProducerID(ctx context.Context, id string, timeoutMs int32, given ProducerIDAndEpoch) (ProducerIDAndEpoch, error) {
	if timeoutMs <= 0 || time.Duration(timeoutMs)*time.Millisecond > c.cfg.MaxTimeout {
		return NoProducer, kerr.InvalidTransactionTimeout
	}
	sh, e, err := c.lock(ctx, id, true)
	if err != nil {
		return NoProducer, err
	}
	defer e.mu.Unlock()
	now := c.cfg.Now().UnixMilli()
	if e.version == 0 {
		pid, err := c.allocate(ctx)
		if err != nil {
			return NoProducer, err
		}
		next := coord.TxnMeta{ProducerID: pid, PrevProducerID: -1, PrevEpoch: -1, TimeoutMs: timeoutMs, State: coord.TxnEmpty, UpdateMs: now}
		if err := c.write(ctx, sh, e, &next); err != nil {
			return NoProducer, err
		}
		return ProducerIDAndEpoch{pid, 0}, nil
	}
	m := e.meta
	if given.ID >= 0 {
		settled := !e.completing.Load() && (m.State == coord.TxnEmpty || isComplete(m.State))
		switch {
		case settled && m.PrevProducerID >= 0 && given == (ProducerIDAndEpoch{m.PrevProducerID, m.PrevEpoch}):
			// The producer before the last bump: a retry of the call that bumped (its answer was
			// lost), or a producer recovering after a timeout's abort bumped its epoch. As in Kafka,
			// it gets the current producer, without another bump.
			return ProducerIDAndEpoch{m.ProducerID, m.Epoch}, nil
		case given.ID != m.ProducerID:
			return NoProducer, kerr.InvalidProducerIDMapping
		case given.Epoch != m.Epoch:
			return NoProducer, kerr.ProducerFenced
		}
	}
	if e.completing.Load() || isPrepare(m.State) {
		return NoProducer, kerr.ConcurrentTransactions
	}
	if m.State == coord.TxnOngoing {
		if err := c.abortFenced(ctx, sh, e, OutcomeFenced); err != nil {
			return NoProducer, err
		}
		return NoProducer, kerr.ConcurrentTransactions
	}
	next := m
	next.PrevProducerID, next.PrevEpoch = m.ProducerID, m.Epoch
	if m.Epoch >= math.MaxInt16-1 { // Kafka's exhaustion: a new producer id, epoch 0
		pid, err := c.allocate(ctx)
		if err != nil {
			return NoProducer, err
		}
		next.ProducerID, next.Epoch = pid, 0
	} else {
		next.Epoch++
	}
	next.TimeoutMs, next.State, next.Partitions, next.Groups, next.StartMs, next.UpdateMs = timeoutMs, coord.TxnEmpty, nil, nil, 0, now
	if err := c.write(ctx, sh, e, &next); err != nil {
		return NoProducer, err
	}
	return ProducerIDAndEpoch{next.ProducerID, next.Epoch}, nil
}

func (c *Coordinator) allocate(ctx context.Context) (int64, error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.WriteTimeout)
	defer cancel()
	pid, err := c.cfg.Store.AllocateProducerID(actx)
	if err != nil {
		c.log.Warn("producer id allocation failed", "error", err)
		return 0, kerr.CoordinatorNotAvailable
	}
	return pid, nil
}

// abortFenced aborts e's ongoing transaction at the next epoch (e.mu held), so that its markers fence
// the producer that was writing it, and starts writing them; outcome says why, for the metrics.
func (c *Coordinator) abortFenced(ctx context.Context, sh *shard, e *entry, outcome string) error {
	next := e.meta
	next.PrevProducerID, next.PrevEpoch = e.meta.ProducerID, e.meta.Epoch
	if next.Epoch < math.MaxInt16 {
		next.Epoch++
	}
	next.State, next.UpdateMs = coord.TxnPrepareAbort, c.cfg.Now().UnixMilli()
	if err := c.write(ctx, sh, e, &next); err != nil {
		return err
	}
	c.m.ends.WithLabelValues(outcome).Inc()
	c.startCompletion(sh, e)
	return nil
}

// checkProducer refuses a request of a producer other than the id's current one.
func checkProducer(m coord.TxnMeta, p ProducerIDAndEpoch) error {
	switch {
	case p.ID != m.ProducerID:
		return kerr.InvalidProducerIDMapping
	case p.Epoch != m.Epoch:
		return kerr.ProducerFenced
	}
	return nil
}

// AddPartitions adds partitions to the producer's transaction, starting one if none is ongoing.
func (c *Coordinator) AddPartitions(ctx context.Context, id string, p ProducerIDAndEpoch, tps []coord.TP) error {
	return c.add(ctx, id, p, tps, nil)
}

// AddOffsets adds a consumer group to the producer's transaction (its TxnOffsetCommits then wait for
// the transaction's end), starting one if none is ongoing.
func (c *Coordinator) AddOffsets(ctx context.Context, id string, p ProducerIDAndEpoch, group string) error {
	return c.add(ctx, id, p, nil, []string{group})
}

func (c *Coordinator) add(ctx context.Context, id string, p ProducerIDAndEpoch, tps []coord.TP, groups []string) error {
	sh, e, err := c.lock(ctx, id, false)
	if err != nil {
		return err
	}
	if e == nil {
		return kerr.InvalidProducerIDMapping
	}
	defer e.mu.Unlock()
	if e.version == 0 {
		return kerr.InvalidProducerIDMapping
	}
	if err := checkProducer(e.meta, p); err != nil {
		return err
	}
	if e.completing.Load() || isPrepare(e.meta.State) {
		return kerr.ConcurrentTransactions
	}
	next := e.meta
	changed := next.State != coord.TxnOngoing
	if changed {
		next.State, next.Partitions, next.Groups, next.StartMs = coord.TxnOngoing, nil, nil, c.cfg.Now().UnixMilli()
	}
	for _, tp := range tps {
		if !slices.Contains(next.Partitions, tp) {
			next.Partitions, changed = append(slices.Clip(next.Partitions), tp), true
		}
	}
	for _, g := range groups {
		if !slices.Contains(next.Groups, g) {
			next.Groups, changed = append(slices.Clip(next.Groups), g), true
		}
	}
	if !changed {
		return nil
	}
	next.UpdateMs = c.cfg.Now().UnixMilli()
	return c.write(ctx, sh, e, &next)
}

// EndTxn decides the producer's ongoing transaction: commit or abort. The decision is durable when it
// returns; its markers are written after. A retry that finds the same decision still being written
// answers CONCURRENT_TRANSACTIONS, one that finds it done succeeds, one that finds another decision
// (or no transaction) INVALID_TXN_STATE.
func (c *Coordinator) EndTxn(ctx context.Context, id string, p ProducerIDAndEpoch, commit bool) error {
	sh, e, err := c.lock(ctx, id, false)
	if err != nil {
		return err
	}
	if e == nil {
		return kerr.InvalidProducerIDMapping
	}
	defer e.mu.Unlock()
	if e.version == 0 {
		return kerr.InvalidProducerIDMapping
	}
	if err := checkProducer(e.meta, p); err != nil {
		return err
	}
	switch s := e.meta.State; {
	case s == coord.TxnOngoing:
		next := e.meta
		next.State, next.UpdateMs = coord.TxnPrepareAbort, c.cfg.Now().UnixMilli()
		if commit {
			next.State = coord.TxnPrepareCommit
		}
		if err := c.write(ctx, sh, e, &next); err != nil {
			return err
		}
		c.m.ends.WithLabelValues(map[bool]string{true: OutcomeCommit, false: OutcomeAbort}[commit]).Inc()
		c.startCompletion(sh, e)
		return nil
	case s == coord.TxnPrepareCommit && commit, s == coord.TxnPrepareAbort && !commit:
		return kerr.ConcurrentTransactions
	case s == coord.TxnCompleteCommit && commit, s == coord.TxnCompleteAbort && !commit:
		return nil
	}
	return kerr.InvalidTxnState
}

// State is a transactional id's state as its coordinator holds it, for DescribeTransactions and tests.
func (c *Coordinator) State(ctx context.Context, id string) (coord.TxnMeta, bool, error) {
	_, e, err := c.lock(ctx, id, false)
	if err != nil || e == nil {
		return coord.TxnMeta{}, false, err
	}
	defer e.mu.Unlock()
	m := e.meta
	m.Partitions, m.Groups = slices.Clone(m.Partitions), slices.Clone(m.Groups)
	return m, e.version != 0, nil
}
