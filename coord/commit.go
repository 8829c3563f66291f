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
// offset (the last index entry's LastOffset+1, 0 when empty) and its producer states. A read: it is
// sent again while attempts time out or find etcd unavailable (txnAttempts).
func (c *Client) LoadPartition(ctx context.Context, tp TP) (next int64, producers []ProducerState, err error) {
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
	puts    []clientv3.Op
	// resent: an earlier Txn carrying the unit was sent more than once before etcd refused it for
	// too many operations or bytes (see runTxn), so one of its attempts may have applied.
	resent bool
	bytes  int // the unit's share of its Txn's request size (estimated: keys, values, txnOpBytes each)
}

// Commit makes each commit's index entry and producer states visible, each partition guarded by
// Compare(CreateRevision(leaders/<t>/<p>) == Epoch). Partitions are packed into as few Txns as
// MaxTxnOps and MaxRequestBytes allow (a partition's operations never straddle two Txns) and the
// Txns run concurrently; a Txn etcd refuses for having more operations than its --max-txn-ops, or
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
// twice.
func (s *Session) encodeUnit(u *unit, commits []Commit) {
	leader := s.c.keys.leader(u.tp)
	epochs := map[int64]bool{}
	producers := map[int64]int{} // producer id → index in u.puts
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
		u.entries = append(u.entries, u.put(index, cm.Entry, -1))
		for _, p := range cm.Producers {
			at, ok := producers[p.ID]
			if !ok {
				at = -1
				producers[p.ID] = len(u.puts)
			}
			u.put(s.c.keys.producer(u.tp, p.ID), p, at)
		}
	}
	s.encodeDrops(u, commits, producers)
}

// encodeDrops deletes the producer states the unit's commits drop, unless one of them writes the same
// producer (etcd rejects a Txn that names a key twice; the write wins).
func (s *Session) encodeDrops(u *unit, commits []Commit, written map[int64]int) {
	dropped := map[int64]bool{}
	for _, i := range u.commits {
		for _, id := range commits[i].DropProducers {
			if _, w := written[id]; w || dropped[id] {
				continue
			}
			dropped[id] = true
			key := s.c.keys.producer(u.tp, id)
			u.puts = append(u.puts, clientv3.OpDelete(key))
			u.bytes += len(key) + txnOpBytes
		}
	}
}

// put appends (at < 0) or replaces puts[at] with key = JSON(v), and returns the value.
func (u *unit) put(key string, v any, at int) string {
	val, _ := json.Marshal(v) // plain structs of numbers and strings: cannot fail
	op := clientv3.OpPut(key, string(val))
	if at >= 0 {
		u.puts[at] = op
	} else {
		u.puts = append(u.puts, op)
	}
	u.bytes += len(key) + len(val) + txnOpBytes
	return string(val)
}

// ops is the unit's share of a Txn's operation count: etcd limits compares, success ops and
// failure ops (one leader Get per unit) each to --max-txn-ops.
func (u *unit) ops() int { return max(len(u.cmps), len(u.puts), 1+len(u.commits)) }

// runPacked packs units into Txns of the client's limits and runs them. The units of a Txn that etcd
// refused for too many operations or bytes, which it never applied, are packed again to the limits
// the client fell back to and run again; that happens at most twice, since each limit falls only
// once.
//
// Each refused Txn's units are packed again apart from any other's: a new Txn then holds only
// partitions of one earlier Txn, so if it fails on a fenced compare, so does every attempt of that
// earlier Txn still queued in etcd, and the partitions it retries cannot have been applied by one.
func (s *Session) runPacked(ctx context.Context, units []*unit, errs []error) []txnResult {
	lim := s.c.limits()
	txns := s.pack(units, errs, lim)
	var results []txnResult
	for len(txns) > 0 {
		res := s.runTxns(ctx, txns, lim)
		results = append(results, res...)
		lim, txns = s.c.limits(), nil
		for _, r := range res {
			txns = append(txns, s.pack(r.repack, errs, lim)...)
		}
	}
	return results
}

// pack fills Txns of at most lim.ops operations and lim.bytes() estimated bytes greedily in order. A
// unit of more operations than a Txn takes gets an error; one of more bytes goes alone (etcd, allowing
// lim.requestBytes, more than lim.bytes(), may take it).
func (s *Session) pack(units []*unit, errs []error, lim txnLimits) [][]*unit {
	var txns [][]*unit
	var cur []*unit
	var cmps, puts, bytes int
	limit, budget := lim.ops, lim.bytes()
	for _, u := range units {
		if u.ops() > limit {
			for _, i := range u.commits {
				errs[i] = fmt.Errorf("coord: commit %s: needs %d operations, more than the %d of one Txn", u.tp, u.ops(), limit)
			}
			continue
		}
		if len(cur) > 0 && (cmps+len(u.cmps) > limit || puts+len(u.puts) > limit ||
			len(cur)+1 > limit || bytes+u.bytes > budget) {
			txns = append(txns, cur)
			cur, cmps, puts, bytes = nil, 0, 0, 0
		}
		cur = append(cur, u)
		cmps, puts, bytes = cmps+len(u.cmps), puts+len(u.puts), bytes+u.bytes
	}
	if len(cur) > 0 {
		txns = append(txns, cur)
	}
	return txns
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
