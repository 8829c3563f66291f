package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// txnOpBytes is what one compare or operation of a Txn costs besides its key and value: protobuf
// tags and lengths, a compare's target and revision, a get's options. Measured about 8 bytes;
// counted 16 so that the estimate stays above the request's real size, which etcd checks whole
// (compares, puts and the Else branch's reads) against its --max-request-bytes. A packed Txn's
// estimate is kept under txnBytes of the --max-request-bytes the client assumes (1 MiB of etcd's
// default 1.5 MiB).
const txnOpBytes = 16

// commitRounds is the first attempt plus one retry of the partitions that were not fenced but
// shared a failed Txn with one that was.
const commitRounds = 2

// LoadPartition reads, in one linearizable Txn, what a new leader needs: the partition's next
// offset (the last index entry's LastOffset+1, 0 when empty) and its producer states, pending states
// resolved (see Session.LoadPartition, which a leader calls instead: it also sets back in etcd what
// this only reports). A read: it is sent again while attempts time out or find etcd unavailable
// (txnAttempts).
func (c *Client) LoadPartition(ctx context.Context, tp TP) (next int64, producers []ProducerState, err error) {
	next, states, err := c.loadPartition(ctx, tp)
	if err != nil {
		return 0, nil, err
	}
	producers, _ = resolvePending(states, next)
	return next, producers, nil
}

// loadPartition reads the partition's next offset and its producer states as stored.
func (c *Client) loadPartition(ctx context.Context, tp TP) (next int64, producers []ProducerState, err error) {
	defer c.metrics.observeQuery(ctx, opLoadPartition, time.Now())
	resp, _, err := c.txnAttempts(ctx, txnLoadPartition, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return c.etcd.Txn(ctx).Then(
			clientv3.OpGet(c.keys.partIndex(tp), clientv3.WithPrefix(),
				clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1)),
			clientv3.OpGet(c.keys.partProducers(tp), clientv3.WithPrefix()),
		).Commit()
	})
	if err != nil {
		return 0, nil, fmt.Errorf("coord: load partition %s: %w", tp, err)
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		var e IndexEntry
		if err := json.Unmarshal(kvs[0].Value, &e); err != nil {
			return 0, nil, fmt.Errorf("coord: load partition %s: decode %s: %w", tp, kvs[0].Key, err)
		}
		next = e.LastOffset + 1
	}
	for _, kv := range resp.Responses[1].GetResponseRange().GetKvs() {
		var p ProducerState
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return 0, nil, fmt.Errorf("coord: load partition %s: decode %s: %w", tp, kv.Key, err)
		}
		producers = append(producers, p)
	}
	return next, producers, nil
}

// unit is what must commit atomically: every commit of one partition in the call. Units are
// packed into Txns but never split across two.
type unit struct {
	tp      TP
	commits []int    // indexes into the caller's slice
	epochs  []int64  // epochs[j] is the epoch of commits[j]
	bases   []int64  // bases[j] is the base offset of commits[j]
	entries []string // entries[j] is the value of commits[j]'s index key
	cmps    []clientv3.Cmp
	puts    []clientv3.Op // index entries
	// states are the producer-state puts (one per producer: its last state in the unit), producers
	// their values and prior each producer's committed state before the unit, if any: what a split
	// commit writes them with (commitSplit).
	states     []clientv3.Op
	producers  []ProducerState
	prior      map[int64]ProducerState
	stateBytes int // the states' share of bytes
	// resent: an earlier Txn carrying the unit was sent more than once before etcd refused it for
	// too many operations or bytes (see runTxn), so one of its attempts may have applied.
	resent bool
	bytes  int // the unit's share of its Txn's request size (estimated: keys, values, txnOpBytes each)
}

// Commit makes each commit's index entry and producer states visible, each partition guarded by
// Compare(CreateRevision(leaders/<t>/<p>) == Epoch). Partitions are packed into as few Txns as
// MaxTxnOps and MaxRequestBytes allow (a partition's operations never straddle two Txns, except
// those of a partition too large for one Txn with its producer states, which is committed in steps:
// see commitSplit and ErrRenewEpoch) and the Txns run concurrently; a Txn etcd refuses for having
// more operations than its --max-txn-ops, or
// more bytes than its --max-request-bytes, is packed again, smaller, and sent again (see
// Client.fallBackTxnOps, Client.fallBackRequestBytes). It returns one error per commit, nil
// meaning committed: ErrFenced if the epoch is no longer the partition's leader epoch. A Txn whose
// attempt times out (Config.CommitAttemptTimeout) or finds etcd unavailable is sent again, within
// Config.CommitTimeout, and an earlier attempt found applied counts as committed. Any other error
// (every attempt timed out, say) leaves the outcome unknown, as with any etcd write: the leader must
// reload the partition before going on.
//
// Commit sets each entry's Epoch to the commit's epoch and its Bytes to the sum of its extents.
func (s *Session) Commit(ctx context.Context, commits []Commit) []error {
	commits = slices.Clone(commits) // validation sets Epoch and Bytes: not in the caller's slice
	errs := make([]error, len(commits))
	units := s.buildUnits(commits, errs)
	for round := 1; round <= commitRounds && len(units) > 0; round++ {
		var retry []int
		for _, res := range s.runPacked(ctx, units, errs) {
			for i, err := range res.errs {
				errs[i] = err
			}
			retry = append(retry, res.retry...)
		}
		if round == commitRounds {
			for _, i := range retry {
				errs[i] = fmt.Errorf("coord: commit %s: not committed: its retry Txn failed on another partition's fenced compare", commits[i].TP)
			}
			break
		}
		units = s.buildUnits(subset(commits, retry), nil)
		remap(units, retry)
	}
	return errs
}

// subset returns commits[i] for each i in idx.
func subset(commits []Commit, idx []int) []Commit {
	out := make([]Commit, len(idx))
	for j, i := range idx {
		out[j] = commits[i]
	}
	return out
}

// remap turns units built from subset(…, idx) back into indexes of the caller's slice.
func remap(units []*unit, idx []int) {
	for _, u := range units {
		for j, i := range u.commits {
			u.commits[j] = idx[i]
		}
	}
}

// buildUnits groups commits by partition, in first-seen order, and encodes their operations.
// Invalid commits get their error in errs (errs is nil only when they were validated before).
func (s *Session) buildUnits(commits []Commit, errs []error) []*unit {
	type at struct {
		tp   TP
		base int64
	}
	byTP := map[TP]*unit{}
	bases := map[at]bool{}
	var units []*unit
	for i := range commits {
		cm := &commits[i]
		err := validateCommit(cm)
		if err == nil && bases[at{cm.TP, cm.Entry.BaseOffset}] {
			// etcd refuses a Txn that puts one key twice: it would fail the whole Txn.
			err = fmt.Errorf("coord: commit %s: base offset %d twice in one call", cm.TP, cm.Entry.BaseOffset)
		}
		if err != nil {
			if errs != nil {
				errs[i] = err
			}
			continue
		}
		bases[at{cm.TP, cm.Entry.BaseOffset}] = true
		u := byTP[cm.TP]
		if u == nil {
			u = &unit{tp: cm.TP}
			byTP[cm.TP] = u
			units = append(units, u)
		}
		u.commits = append(u.commits, i)
		u.epochs = append(u.epochs, cm.Epoch)
		u.bases = append(u.bases, cm.Entry.BaseOffset)
	}
	for _, u := range units {
		s.encodeUnit(u, commits)
	}
	return units
}

func validateCommit(cm *Commit) error {
	e := &cm.Entry
	if cm.Epoch <= 0 || e.BaseOffset < 0 || e.LastOffset < e.BaseOffset || cm.TP.Partition < 0 {
		return fmt.Errorf("coord: commit %s: invalid epoch %d or offsets [%d, %d]", cm.TP, cm.Epoch, e.BaseOffset, e.LastOffset)
	}
	e.Epoch = cm.Epoch
	e.Bytes = 0
	for _, x := range e.Extents {
		e.Bytes += int64(x.Len)
	}
	return nil
}

// encodeUnit builds the unit's compares (one per distinct epoch) and puts. A producer written by
// two commits of the unit is put once, with the later state: etcd rejects a Txn that puts one key
// twice. Its prior state is the one before the first of them.
func (s *Session) encodeUnit(u *unit, commits []Commit) {
	leader := s.c.keys.leader(u.tp)
	epochs := map[int64]bool{}
	producers := map[int64]int{} // producer id → index in u.states
	// runTxn's Else branch reads the leader key, and each index key, which is also compared.
	u.bytes += len(leader) + txnOpBytes
	for _, i := range u.commits {
		cm := commits[i]
		if !epochs[cm.Epoch] {
			epochs[cm.Epoch] = true
			u.cmps = append(u.cmps, clientv3.Compare(clientv3.CreateRevision(leader), "=", cm.Epoch))
			u.bytes += len(leader) + txnOpBytes
		}
		// Offsets are written once: a leader whose state is stale cannot overwrite an entry.
		index := s.c.keys.indexEntry(u.tp, cm.Entry.BaseOffset)
		u.cmps = append(u.cmps, clientv3.Compare(clientv3.CreateRevision(index), "=", 0))
		u.bytes += 2 * (len(index) + txnOpBytes)
		val, n := encodePut(&u.puts, index, cm.Entry, -1)
		u.entries = append(u.entries, val)
		u.bytes += n
		for _, p := range cm.Producers {
			p.Pending, p.Prev = false, nil // written with its index entry: nothing to set back
			at, ok := producers[p.ID]
			if !ok {
				at = -1
				producers[p.ID] = len(u.states)
				u.producers = append(u.producers, p)
				if prev, ok := cm.Prior[p.ID]; ok {
					if u.prior == nil {
						u.prior = map[int64]ProducerState{}
					}
					u.prior[p.ID] = prev
				}
			} else {
				u.producers[at] = p
			}
			_, n := encodePut(&u.states, s.c.keys.producer(u.tp, p.ID), p, at)
			u.bytes += n
			u.stateBytes += n
		}
	}
}

// encodePut appends (at < 0) or replaces (*ops)[at] with key = JSON(v), and returns the value and
// its estimated size in a Txn.
func encodePut(ops *[]clientv3.Op, key string, v any, at int) (string, int) {
	val, _ := json.Marshal(v) // plain structs of numbers and strings: cannot fail
	op := clientv3.OpPut(key, string(val))
	if at >= 0 {
		(*ops)[at] = op
	} else {
		*ops = append(*ops, op)
	}
	return string(val), len(key) + len(val) + txnOpBytes
}

// ops is the unit's share of a Txn's operation count: etcd limits compares, success ops and
// failure ops (one leader Get per unit) each to --max-txn-ops.
func (u *unit) ops() int { return max(len(u.cmps), len(u.puts)+len(u.states), 1+len(u.commits)) }

// indexOps is what the unit needs of one Txn without its producer states: what a split commit's
// index step takes.
func (u *unit) indexOps() int { return max(len(u.cmps), len(u.puts), 1+len(u.commits)) }

// runPacked packs units into Txns of the client's limits and runs them. The units of a Txn that etcd
// refused for too many operations or bytes, which it never applied, are packed again to the limits
// the client fell back to and run again; that happens at most twice, since each limit falls only
// once. A unit too large for one Txn is committed in several (commitSplit), alongside.
//
// Each refused Txn's units are packed again apart from any other's: a new Txn then holds only
// partitions of one earlier Txn, so if it fails on a fenced compare, so does every attempt of that
// earlier Txn still queued in etcd, and the partitions it retries cannot have been applied by one.
func (s *Session) runPacked(ctx context.Context, units []*unit, errs []error) []txnResult {
	var mu sync.Mutex
	var results []txnResult
	var splits sync.WaitGroup
	split := func(units []*unit) {
		for _, u := range units {
			splits.Go(func() {
				r := s.commitSplit(ctx, u)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			})
		}
	}
	lim := s.c.limits()
	txns, big := s.pack(units, errs, lim)
	split(big)
	for len(txns) > 0 {
		res := s.runTxns(ctx, txns, lim)
		mu.Lock()
		results = append(results, res...)
		mu.Unlock()
		lim, txns = s.c.limits(), nil
		for _, r := range res {
			more, big := s.pack(r.repack, errs, lim)
			txns = append(txns, more...)
			split(big)
		}
	}
	splits.Wait()
	return results
}

// pack fills Txns of at most lim.ops operations and lim.bytes() estimated bytes greedily in order. A
// unit with producer states that does not fit one Txn is returned apart, to be committed in several
// (commitSplit); one of more operations than a Txn takes even without them gets an error; one of
// more bytes without producer states goes alone (etcd, allowing lim.requestBytes, more than
// lim.bytes(), may take it).
func (s *Session) pack(units []*unit, errs []error, lim txnLimits) (txns [][]*unit, split []*unit) {
	var cur []*unit
	var cmps, puts, bytes int
	limit, budget := lim.ops, lim.bytes()
	for _, u := range units {
		if u.indexOps() > limit {
			for _, i := range u.commits {
				errs[i] = fmt.Errorf("coord: commit %s: needs %d operations, more than the %d of one Txn", u.tp, u.indexOps(), limit)
			}
			continue
		}
		if len(u.states) > 0 && (u.ops() > limit || u.bytes > budget) {
			split = append(split, u)
			continue
		}
		if len(cur) > 0 && (cmps+len(u.cmps) > limit || puts+len(u.puts)+len(u.states) > limit ||
			len(cur)+1 > limit || bytes+u.bytes > budget) {
			txns = append(txns, cur)
			cur, cmps, puts, bytes = nil, 0, 0, 0
		}
		cur = append(cur, u)
		cmps, puts, bytes = cmps+len(u.cmps), puts+len(u.puts)+len(u.states), bytes+u.bytes
	}
	if len(cur) > 0 {
		txns = append(txns, cur)
	}
	return txns, split
}

// txnResult is the outcome of one Txn: errors by commit index, the commits to retry, and the units
// to pack again (the Txn was refused for too many operations or bytes; their commits have no error
// yet).
type txnResult struct {
	errs   map[int]error
	retry  []int
	repack []*unit
}

// runTxns runs the Txns, packed to lim, concurrently.
func (s *Session) runTxns(ctx context.Context, txns [][]*unit, lim txnLimits) []txnResult {
	results := make([]txnResult, len(txns))
	var wg sync.WaitGroup
	for i, units := range txns {
		wg.Go(func() { results[i] = s.runTxn(ctx, units, lim) })
	}
	wg.Wait()
	return results
}

// runTxn commits units in one Txn, sent again while its attempts time out or find etcd unavailable
// (txnAttempts). If a compare fails, the Else branch has read every leader key and index key at the same
// revision, which says exactly which commits an earlier attempt applied, which were fenced, and
// which offsets are taken; the rest are retried. A Txn refused for having more operations or bytes
// than etcd allows returns its units to be packed again to the client's lowered limits (fallBack).
func (s *Session) runTxn(ctx context.Context, units []*unit, lim txnLimits) txnResult {
	var cmps []clientv3.Cmp
	var puts, gets []clientv3.Op
	size := 0 // estimated
	for _, u := range units {
		size += u.bytes
		cmps = append(cmps, u.cmps...)
		puts = append(puts, u.puts...)
		puts = append(puts, u.states...)
		gets = append(gets, clientv3.OpGet(s.c.keys.leader(u.tp)))
		for _, base := range u.bases {
			gets = append(gets, clientv3.OpGet(s.c.keys.indexEntry(u.tp, base)))
		}
	}
	m := s.c.metrics
	start := time.Now()
	resp, attempts, err := s.c.txnAttempts(ctx, txnCommit, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		start = time.Now()
		return s.c.etcd.Txn(ctx).If(cmps...).Then(puts...).Else(gets...).Commit()
	})
	res := txnResult{errs: map[int]error{}}
	if err != nil {
		if ctx.Err() == nil {
			m.txns.WithLabelValues(resultError).Inc()
			m.txnDuration.Observe(time.Since(start).Seconds())
		}
		if s.c.fallBack(err, lim, size) {
			// Refused before etcd proposed it: no attempt that got this answer applied. Attempts
			// before it (timed out) may have, on a member allowing more: the units keep that in mind.
			for _, u := range units {
				u.resent = u.resent || attempts > 1
			}
			res.repack = units
			return res
		}
		err = explainRefused(err, lim, size)
		if attempts > 1 {
			err = fmt.Errorf("%w (after %d attempts)", err, attempts)
		}
		for _, u := range units {
			for _, i := range u.commits {
				res.errs[i] = fmt.Errorf("coord: commit %s: %w", u.tp, err)
			}
		}
		return res
	}
	m.txnDuration.Observe(time.Since(start).Seconds())
	if resp.Succeeded {
		m.txns.WithLabelValues(resultOK).Inc()
		for _, u := range units {
			for _, i := range u.commits {
				res.errs[i] = nil
			}
		}
		return res
	}
	m.txns.WithLabelValues(resultFenced).Inc()
	s.sortFenced(units, resp.Responses, attempts > 1, &res)
	return res
}

// sortFenced splits the units of a failed Txn into commits an earlier attempt applied, fenced
// commits, commits whose offset is taken, and commits worth retrying. gets holds, per unit, its leader
// key then each commit's index key.
//
// After an earlier attempt of this Txn (resent), or of a Txn that carried the unit before it was
// refused for too many operations or bytes (unit.resent), an index key holding exactly the entry this commit
// writes was written by that attempt, whose answer was lost: committed, whatever the leader key says
// now (the entry names this commit's epoch, offsets and object, which only this leader, sequencing
// serially, writes).
// Otherwise, a leader key that changed means fenced, and no attempt can apply any more: none did
// before this read, and every later one fails the epoch compare.
func (s *Session) sortFenced(units []*unit, gets []*pb.ResponseOp, resent bool, res *txnResult) {
	at := 0
	for _, u := range units {
		var current int64 // create revision of the leader key now; 0 if there is none
		holder := ""
		if kvs := gets[at].GetResponseRange().GetKvs(); len(kvs) > 0 {
			current, holder = kvs[0].CreateRevision, string(kvs[0].Value)
		}
		taken := gets[at+1 : at+1+len(u.commits)]
		at += 1 + len(u.commits)
		for j, i := range u.commits {
			epoch := u.epochs[j]
			kvs := taken[j].GetResponseRange().GetKvs()
			if (resent || u.resent) && len(kvs) > 0 && string(kvs[0].Value) == u.entries[j] {
				res.errs[i] = nil
				s.c.log.Info("commit found applied by an earlier attempt whose answer was lost", "tp", u.tp, "offset", u.bases[j], "epoch", epoch)
				continue
			}
			if epoch == current && len(kvs) > 0 {
				res.errs[i] = fmt.Errorf("%w: %s offset %d", ErrOffsetConflict, u.tp, u.bases[j])
				s.c.log.Warn("commit refused: offset already written; partition state is stale", "tp", u.tp, "offset", u.bases[j])
				continue
			}
			if epoch == current {
				res.retry = append(res.retry, i)
				continue
			}
			s.c.metrics.fenced.Inc()
			res.errs[i] = fmt.Errorf("%w: %s epoch %d, leader key now epoch %d (holder %q)", ErrFenced, u.tp, epoch, current, holder)
			s.c.log.Warn("commit fenced", "tp", u.tp, "epoch", epoch, "current", current, "holder", holder)
		}
	}
}
