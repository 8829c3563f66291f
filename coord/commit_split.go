package coord

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// A partition's commit too large for one Txn (many idempotent producers in one flush: one
// producer-state put each, besides the index put) is written in two steps, both fenced by the leader
// epoch like a commit of one Txn: its producer states first, pending (each with the committed state it
// replaces), in as many Txns as the limits require; then its index entry, the commit point. A leader
// loading the partition sets back the pending states whose index entry never applied, and a leader
// whose split commit failed renews its epoch first, so that no attempt of it applies afterwards.
// docs/INTERNALS.md ("A partition's commit larger than one Txn") argues why a failure between the
// steps neither loses an acknowledged record nor lets a retry be taken for a duplicate, or a duplicate
// for new.

// txnRevert names, in txnAttempts' logs, the Txns of a load that set pending producer states back.
const txnRevert = "set back producer states"

// commitSplit commits u in steps: its producer states, pending, then its index entries. Each step's
// Txn compares the unit's epochs and its index keys absent, as the unit's own Txn would: a step sent
// again after its index entry applied (by an attempt whose answer was lost) changes nothing. Any
// failure fails every commit of u, wrapping ErrRenewEpoch.
func (s *Session) commitSplit(ctx context.Context, u *unit) txnResult {
	s.c.metrics.splits.Inc()
	res := txnResult{errs: map[int]error{}}
	puts, sizes := s.pendingPuts(u)
	fixed := u.bytes - u.stateBytes // compares, the Else branch's reads, the index puts
	for len(puts) > 0 {
		lim := s.c.limits()
		n, bytes := chunk(sizes, lim.ops, lim.bytes()-fixed)
		r := s.runTxn(ctx, []*unit{u.step(puts[:n], nil, fixed+bytes)}, lim)
		if len(r.repack) > 0 {
			continue // refused for its size, and the client's limits fell: cut again
		}
		if !splitStep(u, r, &res) {
			return res
		}
		puts, sizes = puts[n:], sizes[n:]
	}
	for {
		lim := s.c.limits()
		r := s.runTxn(ctx, []*unit{u.step(nil, u.puts, fixed)}, lim)
		if len(r.repack) == 0 {
			splitStep(u, r, &res)
			return res
		}
	}
}

// step is a unit for one Txn of u's split commit: u's compares, and states or index puts. An index
// key found holding exactly this unit's entry counts as committed (resent), whichever attempt wrote
// it: only this commit writes that entry.
func (u *unit) step(states, index []clientv3.Op, bytes int) *unit {
	return &unit{tp: u.tp, commits: u.commits, epochs: u.epochs, bases: u.bases, entries: u.entries,
		cmps: u.cmps, puts: index, states: states, resent: true, bytes: bytes}
}

// pendingPuts encodes u's producer states as a split commit writes them: pending, each with the
// committed state it replaces. It returns the puts and their estimated sizes.
func (s *Session) pendingPuts(u *unit) ([]clientv3.Op, []int) {
	puts := make([]clientv3.Op, 0, len(u.producers))
	sizes := make([]int, 0, len(u.producers))
	for _, p := range u.producers {
		p.Pending = true
		if prev, ok := u.prior[p.ID]; ok {
			prev.Pending, prev.Prev = false, nil
			p.Prev = &prev
		}
		_, n := encodePut(&puts, s.c.keys.producer(u.tp, p.ID), p, -1)
		sizes = append(sizes, n)
	}
	return puts, sizes
}

// chunk is how many of the puts sized sizes, at least one, the next Txn takes: at most limit, within
// budget bytes. It returns that count and their bytes.
func chunk(sizes []int, limit, budget int) (n, bytes int) {
	for n < len(sizes) && n < limit && (n == 0 || bytes+sizes[n] <= budget) {
		bytes += sizes[n]
		n++
	}
	return n, bytes
}

// splitStep takes the outcome r of one Txn of u's split commit into res. It reports whether every
// commit of u went through (written, or found committed by an earlier attempt). If not, every commit
// of u fails, wrapping ErrRenewEpoch and the Txn's own error (ErrFenced, ErrOffsetConflict: nothing
// of the index was written; anything else: unknown).
func splitStep(u *unit, r txnResult, res *txnResult) bool {
	failed := len(r.retry) > 0
	for _, i := range u.commits {
		failed = failed || r.errs[i] != nil
	}
	if !failed {
		for _, i := range u.commits {
			res.errs[i] = nil
		}
		return true
	}
	for _, i := range u.commits {
		err := r.errs[i]
		if err == nil {
			err = fmt.Errorf("coord: commit %s: not committed: a Txn of its split commit failed", u.tp)
		}
		res.errs[i] = fmt.Errorf("%w: %w", ErrRenewEpoch, err)
	}
	return false
}

// LoadPartition is Client.LoadPartition for the leader of tp at epoch, which it must call before it
// takes produce: the pending producer states whose index entry never applied are set back in etcd
// too (in Txns fenced by epoch), before any new commit could fill the offsets they name, after which
// they would look committed.
func (s *Session) LoadPartition(ctx context.Context, tp TP, epoch int64) (next int64, producers []ProducerState, err error) {
	next, states, err := s.c.loadPartition(ctx, tp)
	if err != nil {
		return 0, nil, err
	}
	producers, reverts := resolvePending(states, next)
	if err := s.revertPending(ctx, tp, epoch, reverts); err != nil {
		return 0, nil, err
	}
	if len(reverts) > 0 {
		s.c.log.Info("producer states of a split commit that never applied set back", "tp", tp, "producers", len(reverts), "next", next)
	}
	return next, producers, nil
}

// resolvePending turns stored states into committed ones. A pending state whose batches all lie below
// next belongs to an index entry that applied; one with a batch at or past next was written by a
// split commit whose index entry never applied (the partition's offsets have not moved past the
// commit's base since: see docs/INTERNALS.md) and stands for its Prev, or for no state. reverts are
// those.
func resolvePending(states []ProducerState, next int64) (resolved, reverts []ProducerState) {
	for _, st := range states {
		if st.Pending && !belowNext(st, next) {
			reverts = append(reverts, st)
			if st.Prev != nil {
				prev := *st.Prev
				prev.Pending, prev.Prev = false, nil
				resolved = append(resolved, prev)
			}
			continue
		}
		st.Pending, st.Prev = false, nil
		resolved = append(resolved, st)
	}
	return resolved, reverts
}

func belowNext(st ProducerState, next int64) bool {
	for _, b := range st.Batches {
		if b.LastOffset >= next {
			return false
		}
	}
	return true
}

// revertPending writes each of reverts' Prev back (deletes its key when it has none), in Txns of the
// client's limits fenced by epoch. Writing the same again changes nothing, so each Txn is sent again
// while its attempts time out (txnAttempts).
func (s *Session) revertPending(ctx context.Context, tp TP, epoch int64, reverts []ProducerState) error {
	var ops []clientv3.Op
	var sizes []int
	for _, st := range reverts {
		key := s.c.keys.producer(tp, st.ID)
		if st.Prev == nil {
			ops = append(ops, clientv3.OpDelete(key))
			sizes = append(sizes, len(key)+txnOpBytes)
			continue
		}
		prev := *st.Prev
		prev.Pending, prev.Prev = false, nil
		_, n := encodePut(&ops, key, prev, -1)
		sizes = append(sizes, n)
	}
	leader := s.c.keys.leader(tp)
	for len(ops) > 0 {
		lim := s.c.limits()
		n, size := chunk(sizes, lim.ops, lim.bytes())
		resp, _, err := s.c.txnAttempts(ctx, txnRevert, func(ctx context.Context) (*clientv3.TxnResponse, error) {
			return s.c.etcd.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(leader), "=", epoch)).Then(ops[:n]...).Commit()
		})
		if err != nil {
			if s.c.fallBack(err, lim, size) {
				continue
			}
			return fmt.Errorf("coord: load partition %s: set back producer states: %w", tp, explainRefused(err, lim, size))
		}
		if !resp.Succeeded {
			return fmt.Errorf("%w: load partition %s at epoch %d", ErrFenced, tp, epoch)
		}
		ops, sizes = ops[n:], sizes[n:]
	}
	return nil
}
