package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// errObjectTooOld: an append's object was written longer ago than half GC's grace period (a forward
// that waited very long), so GC might delete it once committed; the producer retries with a new one.
var errObjectTooOld = errors.New("agent: the flush object is too old to commit; retry")

// tooOldToCommit reports whether an object named key must not be committed any more: GC spares only
// objects younger than its grace period, and a commit must land well inside it (docs/INTERNALS.md,
// "Garbage collection").
func (a *Agent) tooOldToCommit(key string, now time.Time) bool {
	written, ok := segstore.ObjectTime(key)
	return ok && now.Sub(written) > a.cfg.GCGrace/2
}

// producerSweepEvery is how often a leader sweeps a partition's producers of those idle longer than
// ProducerIDExpiration.
const producerSweepEvery = time.Minute

// expireProducers forgets, at most every producerSweepEvery, the producers of pl idle longer than
// ProducerIDExpiration and without an open transaction (their snapshots leave etcd by the partition's
// maintenance), so that a leader's
// memory follows the producers in use, not every one that ever wrote. Sequencer goroutine only.
func (a *Agent) expireProducers(pl *partitionLeader, now time.Time) {
	if now.Sub(pl.expired) < producerSweepEvery {
		return
	}
	pl.expired = now
	cutoff := now.Add(-a.cfg.ProducerIDExpiration).UnixMilli()
	for id, st := range pl.producers {
		if producerExpired(st, cutoff) { // never one with an open transaction (61_describe_producers.go)
			delete(pl.producers, id)
		}
	}
}

// runSequencer takes sealed flushes in order, waits for each object write, then sequences and commits
// it. Sequencing is serial: a partition's offsets and producer sequences follow from the previous
// flush's commit.
//
// Sequencing forwarded by other agents for partitions this agent leads is interleaved, in arrival
// order. The sequencer never waits on another agent: what this agent's flushes hold for partitions led
// elsewhere goes to the forwarder, and the flush's buffer is released once those answers are in too.
func (a *Agent) runSequencer(ctx context.Context) {
	for {
		select {
		case fl, ok := <-a.flusher.sealed:
			if !ok {
				return
			}
			a.sequenceFlush(ctx, fl)
		case w := <-a.remote:
			if w.markers != nil {
				a.sequenceMarkers(ctx, w.markers)
			} else {
				a.sequence(ctx, w.appends, false)
			}
			close(w.done)
		}
	}
}

// sequenceFlush sequences one of this agent's flushes once its object is written.
func (a *Agent) sequenceFlush(ctx context.Context, fl *flush) {
	select {
	case <-fl.put.Done():
	case <-ctx.Done():
		a.flusher.fail(fl, errShuttingDown)
		return
	}
	if _, err := fl.put.Result(); err != nil {
		a.flusher.fail(fl, errStorage)
		return
	}
	start := time.Now()
	forwards := a.sequence(ctx, fl.appends, true)
	a.metrics.flushDuration.WithLabelValues("commit").Observe(time.Since(start).Seconds())
	if len(forwards) == 0 {
		a.metrics.writeLatency.Observe(time.Since(fl.sealedAt).Seconds())
		a.flusher.release(fl.bytes)
		return
	}
	var left sync.WaitGroup
	left.Add(len(forwards))
	for leader, appends := range forwards {
		a.forwarder.send(ctx, leader, appends, left.Done)
	}
	a.wg.Go(func() {
		left.Wait()
		a.metrics.writeLatency.Observe(time.Since(fl.sealedAt).Seconds())
		a.flusher.release(fl.bytes)
	})
}

// partitionCommit is the sequencing of one partition's appends in one flush.
type partitionCommit struct {
	pl       *partitionLeader
	appends  []*pendingAppend
	bases    []int64 // offset per append; -1 when the append failed or was a duplicate
	errs     []error
	entry    coord.IndexEntry
	batches  []coord.ProducerBatch // the idempotent batches that get new offsets
	states   map[int64]coord.ProducerState
	evict    []int64 // producers whose state the commit deletes (see makeRoomForProducer)
	accepted bool    // at least one append gets new offsets
}

// sequence assigns offsets to written appends (grouped by partition), commits their index entries in
// fenced Txns, and answers them. Nothing is acknowledged unless its partition's commit succeeded. With
// forward set, the appends of partitions another agent leads are not answered but returned, by leader,
// to be forwarded; forwarded appends are never forwarded again.
func (a *Agent) sequence(ctx context.Context, appends []*pendingAppend, forward bool) map[string][]*pendingAppend {
	var parts []*partitionCommit
	var forwards map[string][]*pendingAppend
	for i := 0; i < len(appends); {
		j := i + 1
		for j < len(appends) && appends[j].tp == appends[i].tp {
			j++
		}
		if leader, ok := a.forwardTo(appends[i].tp); forward && ok {
			if forwards == nil {
				forwards = map[string][]*pendingAppend{}
			}
			forwards[leader] = append(forwards[leader], appends[i:j]...)
		} else {
			parts = append(parts, a.sequencePartition(appends[i:j]))
		}
		i = j
	}
	var commits []coord.Commit
	var committing []*partitionCommit
	for _, pc := range parts {
		if pc.accepted {
			commits = append(commits, pc.commit())
			committing = append(committing, pc)
		}
	}
	var errs []error
	if len(commits) > 0 {
		errs = a.commit(ctx, commits)
	}
	applied := make([]coord.Commit, 0, len(commits)) // the committed ones, applied to the view under one lock
	for i, pc := range committing {
		if err := errs[i]; err != nil {
			a.commitFailed(pc, err)
			continue
		}
		pc.pl.next = pc.entry.LastOffset + 1
		for _, id := range pc.evict {
			delete(pc.pl.producers, id)
		}
		for id, st := range pc.states {
			pc.pl.producers[id] = st
		}
		applied = append(applied, commits[i])
	}
	a.cache.ApplyAll(applied)
	for _, pc := range parts {
		for k, p := range pc.appends {
			p.finish(pc.bases[k], pc.errs[k])
		}
	}
	return forwards
}

// forwardTo names the agent to forward tp's sequencing to: its leader, when that is another live agent
// with an internal listener and this agent does not lead tp itself.
func (a *Agent) forwardTo(tp coord.TP) (string, bool) {
	if a.lead.leading(tp) != nil {
		return "", false
	}
	l, ok := a.cache.Leader(tp)
	if !ok || l.Agent == a.cfg.ID {
		return "", false
	}
	_, ok = a.agentInternalAddr(l.Agent)
	return l.Agent, ok
}

// commit commits through the current session; a lost session fails every commit, one already
// waiting on etcd too. An agent cut off from etcd can wait for that answer long after its session
// (and its partitions) are gone, and its clients, waiting for their produce answers, would not go
// to the new leaders meanwhile. Abandoning the Txn is safe: applied or not, this agent leads nothing
// any more, and a successor loads whatever did apply, producer sequences included.
//
// A commit that failed other than by a compare (fenced, or its offset taken) may have applied: etcd
// timed out or could not be reached, or the session ended under it. Its error wraps
// errCommitUnknown, and the client hears REQUEST_TIMED_OUT ("maybe written": it retries, and a
// retry of what did apply is a duplicate), never an error that says "not written", after which a
// client may report as failed a record that consumers then read.
func (a *Agent) commit(ctx context.Context, commits []coord.Commit) []error {
	errs := a.onSession(ctx, len(commits), func(ctx context.Context, s session) []error { return s.Commit(ctx, commits) })
	a.noteCommits(errs)
	return unknownUnless(errs, coord.ErrFenced)
}

// onSession runs do, n writes, on the current session, cancelled should the session end under it;
// without a session every write fails with coord.ErrSessionClosed.
func (a *Agent) onSession(ctx context.Context, n int, do func(ctx context.Context, s session) []error) []error {
	s := a.lead.session()
	if s == nil {
		errs := make([]error, n)
		for i := range errs {
			errs[i] = coord.ErrSessionClosed
		}
		return errs
	}
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	committed := make(chan struct{})
	defer close(committed)
	go func() {
		select {
		case <-s.Done():
			cancel(coord.ErrSessionClosed)
		case <-committed:
		}
	}()
	return do(cctx, s)
}

// unknownUnless wraps in errCommitUnknown every error that is not one of known: those say the write
// did not apply; any other may have.
func unknownUnless(errs []error, known ...error) []error {
	for i, err := range errs {
		if err != nil && !slices.ContainsFunc(known, func(k error) bool { return errors.Is(err, k) }) {
			errs[i] = fmt.Errorf("%w: %w", errCommitUnknown, err)
		}
	}
	return errs
}

// commitFailed fails the partition's appends. The leader state is dropped either way: after a fence
// the partition is someone else's; after an etcd error the outcome of the Txn is unknown, so its epoch
// is renewed (renewals) and the partition is led again under a new one, its state read afresh.
func (a *Agent) commitFailed(pc *partitionCommit, err error) {
	if errors.Is(err, errCommitUnknown) {
		a.lead.renew.add(pc.pl.tp, pc.pl.epoch)
	}
	for k := range pc.appends {
		if pc.errs[k] == nil {
			pc.bases[k], pc.errs[k] = -1, err
		}
	}
	a.lead.dropUntilReestablished(pc.pl.tp, pc.pl.epoch, "commit failed; partition leadership dropped until re-established", "error", err)
}

// sequencePartition checks producer sequences and assigns offsets to one partition's appends, without
// changing the leader's state: that happens only once the commit succeeds.
func (a *Agent) sequencePartition(appends []*pendingAppend) *partitionCommit {
	pc := &partitionCommit{appends: appends, bases: make([]int64, len(appends)), errs: make([]error, len(appends))}
	pl := a.lead.leading(appends[0].tp)
	if pl == nil {
		for k := range appends {
			pc.bases[k], pc.errs[k] = -1, errNotLeader
		}
		return pc
	}
	pc.pl = pl
	pc.entry = coord.IndexEntry{BaseOffset: pl.next, Epoch: int64(pl.clientEpoch), MaxTimestamp: -1}
	next := pl.next
	now := time.Now()
	a.expireProducers(pl, now)
	for k, p := range appends {
		pc.bases[k] = -1
		m := p.meta
		if a.tooOldToCommit(p.object, now) {
			pc.errs[k] = errObjectTooOld
			continue
		}
		if m.ProducerID >= 0 {
			st, known := pc.states[m.ProducerID]
			if !known && !pc.evicted(m.ProducerID) {
				st, known = pl.producers[m.ProducerID]
			}
			var prev *coord.ProducerState
			if known {
				prev = &st
			}
			if m.Transactional && known && p.txnRev <= st.MarkerRev {
				// Verified before the decision its producer's last marker here carried out: the
				// transaction it was verified in has ended (txn_produce.go).
				pc.errs[k] = kerr.InvalidTxnState
				continue
			}
			dup, err := checkSequence(prev, m)
			if err != nil {
				pc.errs[k] = err
				continue
			}
			if dup >= 0 {
				pc.bases[k] = dup
				continue
			}
			if pc.states == nil {
				pc.states = make(map[int64]coord.ProducerState)
			}
			if prev == nil {
				a.makeRoomForProducer(pc)
			}
			pc.states[m.ProducerID] = recordSequence(prev, m, next, now)
			pc.batches = append(pc.batches, coord.ProducerBatch{ID: m.ProducerID, Epoch: m.ProducerEpoch,
				FirstSeq: m.BaseSequence, LastSeq: m.LastSequence(), FirstOffset: next, LastOffset: next + int64(m.Records) - 1,
				Transactional: m.Transactional})
		}
		pc.bases[k] = next
		next += int64(m.Records)
		pc.accepted = true
		pc.entry.Extents = append(pc.entry.Extents, coord.Extent{
			Object: p.object, Pos: p.extent.Pos, Len: p.extent.Len, CRC: p.extent.CRC})
		pc.entry.Bytes += int64(p.extent.Len)
		pc.entry.MaxTimestamp = max(pc.entry.MaxTimestamp, m.MaxTimestamp)
	}
	pc.entry.LastOffset = next - 1
	return pc
}

// commit is the partition's coord commit: its entry and the idempotent batches in it.
func (pc *partitionCommit) commit() coord.Commit {
	return coord.Commit{TP: pc.pl.tp, Epoch: pc.pl.epoch, Entry: pc.entry, Batches: pc.batches}
}

// checkSequence applies Kafka's idempotent-producer rules to a batch from a producer whose committed
// state is prev (nil for a producer this partition has not seen). It returns the original base offset
// of a retried duplicate, or -1 for a batch to append, or the Kafka error to answer.
//
// A producer this partition has not seen must start at sequence 0. Kafka accepts any first sequence
// (its producer state can expire), but here the state never expires, and a later batch can be
// sequenced after an earlier one of the same producer failed (its PUT or commit failed, or the
// partition was reloaded): accepting it would put it ahead of the earlier batch's retry.
func checkSequence(prev *coord.ProducerState, m kwire.BatchMeta) (dup int64, err error) {
	switch {
	case prev == nil:
		if m.BaseSequence != 0 {
			return -1, kerr.OutOfOrderSequenceNumber
		}
		return -1, nil
	case m.ProducerEpoch < prev.Epoch:
		return -1, kerr.InvalidProducerEpoch
	case m.ProducerEpoch > prev.Epoch:
		if m.BaseSequence != 0 {
			return -1, kerr.OutOfOrderSequenceNumber
		}
		return -1, nil
	}
	for _, b := range prev.Batches {
		if b.FirstSeq == m.BaseSequence && b.LastSeq == m.LastSequence() {
			return b.FirstOffset, nil
		}
	}
	if len(prev.Batches) == 0 {
		return -1, nil
	}
	last := prev.Batches[len(prev.Batches)-1].LastSeq
	if m.BaseSequence != int32((int64(last)+1)%(1<<31)) {
		return -1, kerr.OutOfOrderSequenceNumber
	}
	return -1, nil
}

// recordSequence returns the producer's state after appending the batch at offset base at time now.
func recordSequence(prev *coord.ProducerState, m kwire.BatchMeta, base int64, now time.Time) coord.ProducerState {
	st := coord.ProducerState{ID: m.ProducerID, Epoch: m.ProducerEpoch, LastTime: now.UnixMilli()}
	if prev != nil {
		st.MarkerRev, st.TxnOpen, st.TxnFirst = prev.MarkerRev, prev.TxnOpen, prev.TxnFirst
	}
	if m.Transactional && !st.TxnOpen {
		st.TxnOpen, st.TxnFirst = true, base
	}
	if prev != nil && prev.Epoch == m.ProducerEpoch {
		st.Batches = append(st.Batches, prev.Batches...)
	}
	st.Batches = append(st.Batches, coord.SeqBatch{
		FirstSeq: m.BaseSequence, LastSeq: m.LastSequence(),
		FirstOffset: base, LastOffset: base + int64(m.Records) - 1,
	})
	if n := len(st.Batches); n > coord.MaxProducerBatches {
		st.Batches = append([]coord.SeqBatch(nil), st.Batches[n-coord.MaxProducerBatches:]...)
	}
	return st
}
