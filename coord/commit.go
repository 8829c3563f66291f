package coord

import (
	"context"
	"crypto/rand"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// txnOpBytes is what one compare or operation of a Txn costs besides its key and value: protobuf
// tags and lengths, a compare's target and revision, a get's options. Measured about 8 bytes;
// counted 16 so that the estimate stays above the request's real size, which etcd checks whole
// (compares and puts) against its --max-request-bytes. A packed Txn's
// estimate is kept under txnBytes of the --max-request-bytes the client assumes (1 MiB of etcd's
// default 1.5 MiB).
const txnOpBytes = 16

// commitRounds is the first attempt plus one retry of the partitions that were not fenced but
// shared a failed Txn with one that was.
const commitRounds = 2

// unit is what must commit atomically: every commit of one partition in the call. Units are
// packed into Txns, each Txn writing one commit record, but never split across two.
type unit struct {
	tp      TP
	leader  string  // tp's leader key
	commits []int   // indexes into the caller's slice
	epochs  []int64 // epochs[j] is the fencing epoch of commits[j]
	entries []RecordEntry
	cmps    []clientv3.Cmp // one per distinct epoch
	// prior are the keys of records that earlier Txns carrying the unit would have written: Txns sent
	// more than once before etcd refused them for too many operations or bytes (see runTxn), one
	// attempt of which may have applied. A Txn carrying the unit again requires them absent, and
	// reads them when that fails.
	prior []string
	bytes int // the unit's share of its Txn's request size (estimated)
}

// Commit makes each commit's index entry visible, each partition guarded by
// Compare(CreateRevision(leaders/<t>/<p>) == Epoch): every Txn writes one commit record
// (commits/<id>) holding the entries of the partitions packed into it (docs/INTERNALS.md, "Commit
// records"). Partitions are packed into as few Txns as MaxTxnOps and MaxRequestBytes allow (a
// partition's commits never straddle two Txns) and the Txns run concurrently; a Txn etcd refuses for
// having more operations than its --max-txn-ops, or more bytes than its --max-request-bytes, is packed
// again, smaller, and sent again (see Client.fallBack). It returns one error per commit, nil meaning
// committed: ErrFenced if the epoch is no longer the partition's leader epoch. A Txn whose attempt
// times out (Config.CommitAttemptTimeout) or finds etcd unavailable is sent again, within
// Config.CommitTimeout, and an earlier attempt found applied counts as committed. Any other error
// (every attempt timed out, say) leaves the outcome unknown, as with any etcd write: the leader must
// not sequence under the same epoch again (docs/INTERNALS.md, "Offsets are unique").
//
// Commit sets each entry's Bytes to the sum of its extents.
func (s *Session) Commit(ctx context.Context, commits []Commit) []error {
	commits = slices.Clone(commits) // validation sets Bytes: not in the caller's slice
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

// buildUnits groups commits by partition, in first-seen order, and encodes their compares. Invalid
// commits get their error in errs (errs is nil only when they were validated before).
func (s *Session) buildUnits(commits []Commit, errs []error) []*unit {
	byTP := map[TP]*unit{}
	var units []*unit
	for i := range commits {
		cm := &commits[i]
		err := validateCommit(cm)
		if u := byTP[cm.TP]; err == nil && u != nil && u.entries[len(u.entries)-1].Entry.LastOffset+1 != cm.Entry.BaseOffset {
			err = fmt.Errorf("coord: commit %s: entry at %d does not follow the call's previous one", cm.TP, cm.Entry.BaseOffset)
		}
		if err != nil {
			if errs != nil {
				errs[i] = err
			}
			continue
		}
		u := byTP[cm.TP]
		if u == nil {
			u = &unit{tp: cm.TP}
			byTP[cm.TP] = u
			units = append(units, u)
		}
		u.commits = append(u.commits, i)
		u.epochs = append(u.epochs, cm.Epoch)
		u.entries = append(u.entries, RecordEntry{TP: cm.TP, Entry: cm.Entry, Batches: cm.Batches})
	}
	for _, u := range units {
		s.encodeUnit(u)
	}
	return units
}

func validateCommit(cm *Commit) error {
	e := &cm.Entry
	switch {
	case cm.Epoch <= 0 || e.BaseOffset < 0 || e.LastOffset < e.BaseOffset || cm.TP.Partition < 0:
		return fmt.Errorf("coord: commit %s: invalid epoch %d or offsets [%d, %d]", cm.TP, cm.Epoch, e.BaseOffset, e.LastOffset)
	case len(e.Extents) == 0 || e.Segment != nil:
		return fmt.Errorf("coord: commit %s: an entry holds extents of flush objects", cm.TP)
	}
	e.Bytes = 0
	for _, x := range e.Extents {
		if x.Object == "" || x.Pos < 0 || x.Len <= 0 {
			return fmt.Errorf("coord: commit %s: invalid extent %+v", cm.TP, x)
		}
		e.Bytes += int64(x.Len)
	}
	for _, b := range cm.Batches {
		if b.ID < 0 || b.Epoch < 0 || b.FirstSeq < 0 || b.LastSeq < 0 || b.FirstOffset < e.BaseOffset ||
			b.LastOffset > e.LastOffset || b.LastOffset < b.FirstOffset {
			return fmt.Errorf("coord: commit %s: invalid producer batch %+v", cm.TP, b)
		}
	}
	return nil
}

// encodeUnit builds the unit's compares (one per distinct epoch) and estimates its size: its compares,
// and its entries and the names of their objects in the record (an object named by several units is
// counted by each). The Txn reads nothing: a failed one's reads (readFailed) are a request of their
// own, smaller than the Txn (keys only, at most one per compare).
//
// A flush commits every partition it carries, so this runs once per partition per flush: it allocates
// no sets. A unit nearly always has one epoch and one object (a partition's batches of one flush), so
// distinct ones are found by scanning those seen so far, the last one first.
func (s *Session) encodeUnit(u *unit) {
	u.leader = s.c.keys.leader(u.tp)
	u.bytes = 0
	for j, e := range u.epochs {
		if !slices.Contains(u.epochs[:j], e) {
			u.cmps = append(u.cmps, clientv3.Compare(clientv3.CreateRevision(u.leader), "=", e))
			u.bytes += len(u.leader) + txnOpBytes
		}
	}
	var seenBuf [4]string
	seen := seenBuf[:0]
	for i := range u.entries {
		u.bytes += entrySize(&u.entries[i])
		for _, x := range u.entries[i].Entry.Extents {
			if (len(seen) > 0 && seen[len(seen)-1] == x.Object) || slices.Contains(seen, x.Object) {
				continue
			}
			seen = append(seen, x.Object)
			u.bytes += uvarintLen(uint64(len(x.Object))) + len(x.Object)
		}
	}
}

// entrySize is an entry's encoded size in a record (encodeRecord), counting 3 bytes for each
// extent's object number (up to 2 million objects in a record).
func entrySize(re *RecordEntry) int {
	e := &re.Entry
	n := 16 + uvarintLen(uint64(re.TP.Partition)) + varintLen(e.Epoch) + uvarintLen(uint64(e.BaseOffset)) +
		uvarintLen(uint64(e.LastOffset-e.BaseOffset)) + varintLen(e.MaxTimestamp) + uvarintLen(uint64(len(e.Extents)))
	for _, x := range e.Extents {
		n += 3 + uvarintLen(uint64(x.Pos)) + uvarintLen(uint64(x.Len)) + 4
	}
	n += uvarintLen(uint64(len(re.Batches)))
	for _, b := range re.Batches {
		n += uvarintLen(uint64(b.ID)) + uvarintLen(uint64(b.Epoch)) + uvarintLen(uint64(b.FirstSeq)) + uvarintLen(uint64(b.LastSeq)) +
			uvarintLen(uint64(b.FirstOffset-e.BaseOffset)) + uvarintLen(uint64(b.LastOffset-b.FirstOffset))
	}
	if (&Record{Entries: []RecordEntry{*re}}).transactional() {
		// Record version 2: a flags byte per batch, the marker's presence byte and at most 40 bytes of
		// marker. An entry without either in a version 2 record takes 1 + one per batch more than
		// counted here, well within the third of a Txn's budget left for the estimate's error.
		n += len(re.Batches) + 1 + 40
	}
	return n
}

func uvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

func varintLen(v int64) int { return uvarintLen(uint64(v<<1) ^ uint64(v>>63)) }

// ops is the unit's share of a Txn's operation count: etcd limits compares and success ops each to
// --max-txn-ops. A failed Txn's read (one leader Get per unit, one Get per prior record, one of the
// record) has no more operations than the Txn has compares.
func (u *unit) ops() int { return len(u.cmps) + len(u.prior) }

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

// pack fills Txns of at most lim.ops operations and lim.bytes() estimated bytes greedily in order.
// Each Txn adds a compare and a read of its own record key to its units'. A unit of more operations
// than a Txn takes gets an error; one of more bytes goes alone (etcd, allowing lim.requestBytes, more
// than lim.bytes(), may take it).
func (s *Session) pack(units []*unit, errs []error, lim txnLimits) [][]*unit {
	var txns [][]*unit
	var cur []*unit
	var ops, bytes int
	limit, budget := lim.ops-1, lim.bytes()-recordOverhead
	for _, u := range units {
		if u.ops() > limit {
			for _, i := range u.commits {
				errs[i] = fmt.Errorf("coord: commit %s: needs %d operations, more than the %d of one Txn", u.tp, u.ops()+1, lim.ops)
			}
			continue
		}
		if len(cur) > 0 && (ops+u.ops() > limit || bytes+u.bytes > budget) {
			txns = append(txns, cur)
			cur, ops, bytes = nil, 0, 0
		}
		cur = append(cur, u)
		ops, bytes = ops+u.ops(), bytes+u.bytes
	}
	if len(cur) > 0 {
		txns = append(txns, cur)
	}
	return txns
}

// recordOverhead is a Txn's own share of its size: its record key's compare and put, and the
// record's header.
const recordOverhead = 2*(64+txnOpBytes) + 32

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

// newRecordID names a commit record: a ULID, so that records sort roughly by time and never collide.
func newRecordID() string {
	return ulid.MustNew(ulid.Now(), rand.Reader).String()
}

// recordTxn is one Txn's record, what it compares, and the keys a failed one reads (readFailed).
type recordTxn struct {
	key   string
	value string
	cmps  []clientv3.Cmp
	reads []string
	size  int
}

// buildTxn assembles the record of units and the Txn that writes it:
//
//	If(leader compares of every unit, CreateRevision(record) == 0, CreateRevision(prior record) == 0…)
//	Then(Put(record))
//
// and the keys a failed one reads, at its revision, to tell why: the leader key of every unit, the
// record, the prior records.
func (s *Session) buildTxn(units []*unit) recordTxn {
	t := recordTxn{key: s.c.keys.commit(newRecordID())}
	r := Record{Time: time.Now().UnixMilli()}
	for _, u := range units {
		t.cmps = append(t.cmps, u.cmps...)
		t.reads = append(t.reads, u.leader)
		r.Entries = append(r.Entries, u.entries...)
		t.size += u.bytes
	}
	t.value = string(encodeRecord(nil, &r))
	t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(t.key), "=", 0))
	t.reads = append(t.reads, t.key)
	for _, key := range priorKeys(units) {
		t.cmps = append(t.cmps, clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
		t.reads = append(t.reads, key)
	}
	t.size += recordOverhead
	return t
}

// priorKeys lists the prior records of units, each once, in order.
func priorKeys(units []*unit) []string {
	var out []string
	for _, u := range units {
		for _, k := range u.prior {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	return out
}

// runTxn commits units in one Txn writing one record, sent again while its attempts time out or find
// etcd unavailable (txnAttempts). If a compare fails, readFailed reads every leader key and the record
// keys at the revision the Txn was evaluated at, which says whether an earlier attempt applied, which
// commits were fenced, and which are worth retrying. A Txn refused for having more operations or bytes than
// etcd allows returns its units to be packed again to the client's lowered limits (fallBack).
func (s *Session) runTxn(ctx context.Context, units []*unit, lim txnLimits) txnResult {
	t := s.buildTxn(units)
	m := s.c.metrics
	start := time.Now()
	resp, attempts, err := s.c.txnAttempts(ctx, txnCommit, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		start = time.Now()
		return s.c.etcd.Txn(ctx).If(t.cmps...).Then(clientv3.OpPut(t.key, t.value)).Commit()
	})
	res := txnResult{errs: map[int]error{}}
	if err != nil {
		if ctx.Err() == nil {
			m.txns.WithLabelValues(resultError).Inc()
			m.txnDuration.Observe(time.Since(start).Seconds())
		}
		if s.c.fallBack(err, lim, t.size) {
			// Refused before etcd proposed it: no attempt that got this answer applied. Attempts
			// before it (timed out) may have, on a member allowing more: the units keep that in mind.
			if attempts > 1 {
				for _, u := range units {
					u.prior = append(u.prior, t.key)
				}
			}
			res.repack = units
			return res
		}
		err = explainRefused(err, lim, t.size)
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
		setAll(units, &res, nil)
		return res
	}
	m.txns.WithLabelValues(resultFenced).Inc()
	gets, err := s.readFailed(ctx, t, (*pb.TxnResponse)(resp).GetHeader().GetRevision())
	if err != nil {
		for _, u := range units {
			for _, i := range u.commits {
				res.errs[i] = fmt.Errorf("coord: commit %s: its Txn failed a compare, outcome unknown: %w", u.tp, err)
			}
		}
		return res
	}
	s.sortFenced(units, t, gets, &res)
	return res
}

// readFailed reads t.reads as they were at rev, the revision a failed attempt of t was evaluated at
// (its answer's header revision: a Txn that writes nothing leaves the store at the revision its
// compares saw), in one read-only Txn of one Get per key, sent again while etcd is unavailable. So
// the reads see exactly what the compares saw, as an Else branch would, without the Txn carrying
// them every time it succeeds (a flush's commit over 1,024 partitions: 1,025 reads, about a fifth of
// its cost in etcd).
//
// Reading at rev, not at the latest revision, is what keeps the answer exact: a commit record can be
// deleted after rev (GC, once its entries are dead), and a leader key can move after rev; either read
// later could call an applied commit fenced, or fence a partition whose own compare held. A read that
// fails, rev compacted away included, leaves the outcome unknown (the caller resigns, as after any
// unknown outcome), never guessed.
func (s *Session) readFailed(ctx context.Context, t recordTxn, rev int64) ([]*pb.ResponseOp, error) {
	if rev <= 0 { // WithRev(0) would read the latest revision
		return nil, fmt.Errorf("reading why: the failed Txn's answer has no revision")
	}
	ops := make([]clientv3.Op, len(t.reads))
	for i, key := range t.reads {
		ops[i] = clientv3.OpGet(key, clientv3.WithRev(rev))
	}
	resp, attempts, err := s.c.txnAttempts(ctx, txnCommitRead, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.c.etcd.Txn(ctx).Then(ops...).Commit()
	})
	if err != nil {
		if attempts > 1 {
			err = fmt.Errorf("%w (after %d attempts)", err, attempts)
		}
		return nil, fmt.Errorf("reading why at revision %d: %w", rev, err)
	}
	if len(resp.Responses) != len(ops) {
		return nil, fmt.Errorf("reading why at revision %d: %d answers to %d reads", rev, len(resp.Responses), len(ops))
	}
	return resp.Responses, nil
}

// setAll gives every commit of units the same outcome.
func setAll(units []*unit, res *txnResult, err error) {
	for _, u := range units {
		for _, i := range u.commits {
			res.errs[i] = err
		}
	}
}

// sortFenced splits the commits of a failed Txn into commits an earlier attempt applied, fenced
// commits, and commits worth retrying. gets holds every unit's leader key, then the record key, then
// the prior record keys, as the Txn's compares saw them (readFailed).
//
// The record key holding this Txn's record means an earlier attempt applied it, whose answer was
// lost: every commit in it is committed, whatever the leader keys say now. A prior record present
// means an attempt of an earlier Txn carrying some of the units applied: those are committed.
// Otherwise, a leader key whose create revision changed means fenced, and no attempt can apply any
// more: none did before this read, and every later one fails the epoch compare. The rest are retried
// in a Txn of their own, with a record key of its own: every attempt of this Txn still queued in etcd
// fails the fenced partition's compare, so they cannot be committed twice.
func (s *Session) sortFenced(units []*unit, t recordTxn, gets []*pb.ResponseOp, res *txnResult) {
	if kvs := gets[len(units)].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if string(kvs[0].Value) == t.value {
			s.c.log.Info("commit found applied by an earlier attempt whose answer was lost", "record", t.key)
			setAll(units, res, nil)
			return
		}
		setAll(units, res, fmt.Errorf("coord: commit record %s exists with other contents", t.key))
		return
	}
	applied := map[string]bool{}
	for j, key := range priorKeys(units) {
		applied[key] = len(gets[len(units)+1+j].GetResponseRange().GetKvs()) > 0
	}
	for at, u := range units {
		var current int64 // create revision of the leader key now; 0 if there is none
		holder := ""
		if kvs := gets[at].GetResponseRange().GetKvs(); len(kvs) > 0 {
			current, holder = kvs[0].CreateRevision, parseLeader(kvs[0]).agent
		}
		if slices.ContainsFunc(u.prior, func(k string) bool { return applied[k] }) {
			s.c.log.Info("commit found applied by an earlier, refused Txn's attempt whose answer was lost", "tp", u.tp)
			setAll([]*unit{u}, res, nil)
			continue
		}
		for j, i := range u.commits {
			epoch := u.epochs[j]
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
