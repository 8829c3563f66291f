package group

import (
	"context"
	"errors"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// Transactional offsets (docs/INTERNALS.md, "Transactions"). TxnOffsetCommit gives a group offsets
// that stay pending for the producer's transaction: kept apart (group.txn in memory,
// coord.GroupWrite.Pending in etcd), invisible to OffsetFetch, which answers UNSTABLE_OFFSET_COMMIT
// for their partitions when asked for stable offsets. The transaction's end reaches the group through
// ResolveTxn, called by the agent when the transaction coordinator writes its markers: one group
// write, guarded by the transaction's state at its Prepare write, moves the producer's pending
// offsets into the group's offsets (commit) or only drops them (abort). Every method on group runs
// under g.mu.

// AnswerTxnOffsets adds to resp an answer of code for every partition of topics (0: to be set one by one).
func AnswerTxnOffsets(resp *kmsg.TxnOffsetCommitResponse, topics []kmsg.TxnOffsetCommitRequestTopic, code int16) {
	for _, rt := range topics {
		st := kmsg.NewTxnOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewTxnOffsetCommitResponseTopicPartition()
			sp.Partition, sp.ErrorCode = rp.Partition, code
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
}

// TxnOffsetCommit answers a TxnOffsetCommit (agent/txn_offsets.go says what each version adds). The
// pending offsets are written guarded by guard (when set): the transaction's state the agent verified
// the commit against (Ongoing, the group added). Once the transaction is decided its state has moved
// on and the write changes nothing (CONCURRENT_TRANSACTIONS, which clients treat as abortable), so no
// offsets can be left pending after the transaction's resolution has passed the group.
func (gc *Coordinator) TxnOffsetCommit(ctx context.Context, req *kmsg.TxnOffsetCommitRequest, guard *coord.TxnGuard) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.TxnOffsetCommitResponse)
	AnswerTxnOffsets(resp, req.Topics, 0)
	setAll := func(code int16) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	switch {
	case req.Group == "":
		setAll(kerr.InvalidGroupID.Code)
		return resp
	case req.ProducerID < 0 || req.ProducerEpoch < 0:
		setAll(kerr.InvalidProducerIDMapping.Code)
		return resp
	}
	offs := gc.txnOffsets(req, resp)
	var e *kerr.Error
	code := gc.withGroup(ctx, req.Group, true, func(g *group) {
		if e = g.txnCommitCheck(req); e != nil {
			return
		}
		switch err := g.commitPending(req.ProducerID, req.ProducerEpoch, offs, guard); {
		case errors.Is(err, coord.ErrTxnChanged):
			e = kerr.ConcurrentTransactions
		case err != nil:
			e = kerr.ErrorForCode(g.failCode()).(*kerr.Error)
		}
	})
	if code != 0 {
		setAll(code)
	} else if e != nil {
		setAll(e.Code)
	}
	return resp
}

// txnOffsets resolves the partitions of a TxnOffsetCommit, answering those that cannot be committed.
func (gc *Coordinator) txnOffsets(req *kmsg.TxnOffsetCommitRequest, resp *kmsg.TxnOffsetCommitResponse) []coord.GroupOffset {
	now := gc.cfg.Now().UnixMilli()
	var offs []coord.GroupOffset
	for i, rt := range req.Topics {
		t, ok := gc.view.Topic(rt.Topic)
		ok = ok && gc.serves(t)
		for j, rp := range rt.Partitions {
			epoch := rp.LeaderEpoch
			if req.Version < 2 {
				epoch = -1
			}
			o, code := gc.offsetFor(t, ok, rp.Partition, rp.Offset, epoch, rp.Metadata, now)
			if resp.Topics[i].Partitions[j].ErrorCode = code; code == 0 {
				offs = append(offs, o)
			}
		}
	}
	return offs
}

// txnCommitCheck is Kafka's check of a transactional commit: a commit naming a member (v3+: a
// generation, a member id or an instance id) must come from a current member at the current
// generation; one naming none (older clients, producers outside group management) is taken in any
// state. A producer epoch older than the one of the producer's pending offsets is
// INVALID_PRODUCER_EPOCH: a fenced producer's offsets do not replace its successor's.
func (g *group) txnCommitCheck(req *kmsg.TxnOffsetCommitRequest) *kerr.Error {
	if p, ok := g.txn[req.ProducerID]; ok && req.ProducerEpoch < p.Epoch {
		return kerr.InvalidProducerEpoch
	}
	if req.Generation < 0 && req.MemberID == "" && req.InstanceID == nil {
		return nil
	}
	if e := g.checkInstance(req.InstanceID, req.MemberID); e != nil {
		return e
	}
	if g.members[req.MemberID] == nil {
		return kerr.UnknownMemberID
	}
	if req.Generation != g.generation {
		return kerr.IllegalGeneration
	}
	return nil
}

// commitPending records offs as pending for producer pid's transaction: they replace the
// producer's earlier pending offsets of the same partitions. The group is stored with its metadata
// the first time, so that a coordinator taking the shard over loads the pending offsets with it. With
// guard, the write applies only while the transaction is at that state (coord.ErrTxnChanged: nothing
// written, the group as held is still etcd's).
func (g *group) commitPending(pid int64, epoch int16, offs []coord.GroupOffset, guard *coord.TxnGuard) error {
	if len(offs) == 0 {
		return nil
	}
	p := coord.PendingOffsets{ProducerID: pid, Epoch: epoch}
	byTP := map[coord.TP]int{}
	for _, o := range slices.Concat(g.txn[pid].Offsets, offs) {
		if i, ok := byTP[o.TP()]; ok {
			p.Offsets[i] = o
			continue
		}
		byTP[o.TP()] = len(p.Offsets)
		p.Offsets = append(p.Offsets, o)
	}
	w := coord.GroupWrite{Pending: []coord.PendingOffsets{p}, Txn: guard}
	if !g.stored {
		w.Meta = g.meta()
	}
	switch err := g.env.write(g, w); {
	case errors.Is(err, coord.ErrTxnChanged):
		return err // nothing written: the group as held is still etcd's
	case err != nil:
		g.failed(err)
		return err
	}
	if w.Meta != nil {
		g.stored = true
	}
	g.txn[pid] = p
	return nil
}

// unstable lists the partitions with offsets of an open transaction pending.
func (g *group) unstable() map[coord.TP]bool {
	if len(g.txn) == 0 {
		return nil
	}
	out := map[coord.TP]bool{}
	for _, p := range g.txn {
		for _, o := range p.Offsets {
			out[o.TP()] = true
		}
	}
	return out
}

// markUnstable answers UNSTABLE_OFFSET_COMMIT for the partitions in unstable.
func (gc *Coordinator) markUnstable(topics []kmsg.OffsetFetchResponseGroupTopic, unstable map[coord.TP]bool) {
	if len(unstable) == 0 {
		return
	}
	for i := range topics {
		t, ok := gc.view.Topic(topics[i].Topic)
		if !ok {
			continue
		}
		for j := range topics[i].Partitions {
			sp := &topics[i].Partitions[j]
			if unstable[coord.TP{Topic: t.ID, Partition: sp.Partition}] {
				sp.Offset, sp.LeaderEpoch, sp.ErrorCode = -1, -1, kerr.UnstableOffsetCommit.Code
			}
		}
	}
}

// ResolveTxn applies the end of producer pid's transaction to group name: its pending offsets become the
// group's offsets (commit) or are dropped (abort), in one write guarded by guard, the transaction's
// state at its Prepare write. A group this agent coordinates with nothing pending for pid is already
// resolved (nil). Errors: coord.ErrTxnChanged (the transaction is no longer at guard: nothing
// written), a *kerr.Error (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS…: ask the group's
// coordinator again), or the write's error.
func (gc *Coordinator) ResolveTxn(ctx context.Context, name string, guard coord.TxnGuard, pid int64, commit bool) error {
	var err error
	code := gc.withGroup(ctx, name, false, func(g *group) {
		if g != nil {
			err = g.resolveTxn(guard, pid, commit)
		}
	})
	if code != 0 {
		return kerr.ErrorForCode(code)
	}
	return err
}

func (g *group) resolveTxn(guard coord.TxnGuard, pid int64, commit bool) error {
	p, ok := g.txn[pid]
	if !ok {
		return nil
	}
	w := coord.GroupWrite{DeletePending: []int64{pid}, Txn: &guard}
	if commit {
		w.Offsets = p.Offsets
	}
	if err := g.env.write(g, w); err != nil {
		if errors.Is(err, coord.ErrTxnChanged) {
			return err // nothing written: the group as held is still etcd's
		}
		g.failed(err)
		return err
	}
	delete(g.txn, pid)
	if commit {
		for _, o := range p.Offsets {
			g.offsets[o.TP()] = o
		}
	}
	return nil
}
