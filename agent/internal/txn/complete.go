package txn

import (
	"context"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// A decided transaction (Prepare*) is completed in the background: its markers are written, again
// and again with a growing pause until they all land, then its Complete state. Markers are
// idempotent and guarded by the Prepare write (Marker.Guard), so a coordinator that took the shard
// over writes them all again without harm, and one that lost it cannot write them at all.

// startCompletion starts writing e's markers (e.mu held, e in a Prepare state). Without Run (it is
// stopping) nothing starts: the state stays decided in etcd and the shard's next coordinator
// completes it.
func (c *Coordinator) startCompletion(sh *shard, e *entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx := c.runCtxLocked(); ctx != nil && !sh.lost {
		c.startCompletionLocked(ctx, sh, e)
	}
}

// startCompletionLocked is startCompletion with c.mu held and Run's context.
func (c *Coordinator) startCompletionLocked(ctx context.Context, sh *shard, e *entry) {
	m := e.meta
	e.completing.Store(true)
	mk := Marker{TransactionalID: e.id, ProducerID: m.ProducerID, Epoch: m.Epoch, Commit: m.State == coord.TxnPrepareCommit,
		Partitions: m.Partitions, Groups: m.Groups, Guard: coord.TxnGuard{NS: c.cfg.NS, ID: e.id, Version: e.version}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.complete(ctx, sh, e, mk)
	}()
}

// complete writes mk until it lands, then e's Complete state; it gives up when the shard is lost or
// ctx ends (the next coordinator resumes from etcd).
func (c *Coordinator) complete(ctx context.Context, sh *shard, e *entry, mk Marker) {
	backoff := c.cfg.MarkerBackoff
	for attempt := 1; ; attempt++ {
		if e.dead.Load() || ctx.Err() != nil {
			return
		}
		err := c.cfg.Markers.WriteMarkers(ctx, mk)
		if err == nil {
			break
		}
		if attempt == 1 {
			c.log.Warn("writing a transaction's markers failed; trying again", "transactional_id", mk.TransactionalID, "commit", mk.Commit, "error", err)
		} else {
			c.log.Debug("writing a transaction's markers failed; trying again", "transactional_id", mk.TransactionalID, "attempt", attempt, "error", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, 32*c.cfg.MarkerBackoff)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.dead.Load() || e.version != mk.Guard.Version {
		return
	}
	decided := e.meta.UpdateMs
	next := e.meta
	next.State, next.UpdateMs = coord.TxnCompleteAbort, c.cfg.Now().UnixMilli()
	if mk.Commit {
		next.State = coord.TxnCompleteCommit
	}
	if err := c.write(ctx, sh, e, &next); err != nil {
		return // the shard is dropped: its next load resumes the completion
	}
	e.completing.Store(false)
	c.m.completion.Observe(max(0, float64(next.UpdateMs-decided)/1000))
}

// abortTimedOut aborts e's transaction, past its timeout, at the next epoch (e.mu held): as Kafka
// does, the producer that let it time out is fenced.
func (c *Coordinator) abortTimedOut(ctx context.Context, sh *shard, e *entry) {
	c.log.Info("transaction timed out; aborting it", "transactional_id", e.id, "producer_id", e.meta.ProducerID,
		"epoch", e.meta.Epoch, "timeout_ms", e.meta.TimeoutMs)
	if err := c.abortFenced(ctx, sh, e, OutcomeTimeout); err != nil {
		c.log.Warn("aborting a timed out transaction failed", "transactional_id", e.id, "error", err)
	}
}

// expire deletes an idle id (e.mu held).
func (c *Coordinator) expire(ctx context.Context, sh *shard, e *entry) {
	if err := c.write(ctx, sh, e, nil); err != nil {
		c.log.Warn("deleting an expired transactional id failed", "transactional_id", e.id, "error", err)
		return
	}
	e.dead.Store(true)
	c.mu.Lock()
	defer c.mu.Unlock()
	if sh.ids[e.id] == e {
		delete(sh.ids, e.id)
	}
}
