package group

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// Transactional offsets: a commit naming no member is taken in any state, one naming a member is
// checked as OffsetCommit's; pending offsets replace the producer's earlier ones of the same
// partition, stay apart from the committed offsets, survive a reload, and a transaction's end moves
// them (commit) or drops them (abort), guarded by the transaction; a stale guard changes nothing and
// leaves the group served.
func TestGroupTxnOffsets(t *testing.T) {
	t.Parallel()
	h := newGroupHarness(t)
	tpA, tpB := coord.TP{Topic: coord.NewTopicID()}, coord.TP{Topic: coord.NewTopicID(), Partition: 1}
	off := func(tp coord.TP, o int64) coord.GroupOffset {
		return coord.GroupOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o}
	}
	check := func(gen int32, member string) *kerr.Error {
		req := kmsg.NewPtrTxnOffsetCommitRequest()
		req.Generation, req.MemberID = gen, member
		return h.g.txnCommitCheck(req)
	}
	h.g.mu.Lock()
	if e := check(-1, ""); e != nil {
		t.Fatalf("commit naming no member: %v", e)
	}
	if err := h.g.commitPending(7, 0, []coord.GroupOffset{off(tpA, 1), off(tpB, 5)}, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.g.commitPending(7, 1, []coord.GroupOffset{off(tpA, 3)}, nil); err != nil {
		t.Fatal(err)
	}
	old := kmsg.NewPtrTxnOffsetCommitRequest()
	old.ProducerID, old.ProducerEpoch = 7, 0
	if e := h.g.txnCommitCheck(old); e != kerr.InvalidProducerEpoch {
		t.Fatalf("commit of an older producer epoch: %v", e)
	}
	if h.writes[0].Meta == nil {
		t.Fatal("the group's first pending offsets were written without its metadata")
	}
	last := h.writes[len(h.writes)-1].Pending
	if len(last) != 1 || len(last[0].Offsets) != 2 || last[0].Offsets[0].Offset != 3 || last[0].Offsets[1].Offset != 5 {
		t.Fatalf("pending write %+v, want tpA at 3 and tpB at 5", last)
	}
	if len(h.g.offsets) != 0 || !h.g.unstable()[tpA] || !h.g.unstable()[tpB] {
		t.Fatalf("offsets %v, unstable %v", h.g.offsets, h.g.unstable())
	}
	h.g.mu.Unlock()

	// A member's commit is checked; a commit naming none is taken even with members.
	id, w := h.newMember()
	answered[*kmsg.JoinGroupResponse](t, w)
	_, sw := h.sync(id, 1, map[string]string{id: "x"})
	answered[*kmsg.SyncGroupResponse](t, sw)
	h.g.mu.Lock()
	if e := check(0, id); e != kerr.IllegalGeneration {
		t.Fatalf("member at an old generation: %v", e)
	}
	if e := check(1, "other"); e != kerr.UnknownMemberID {
		t.Fatalf("unknown member: %v", e)
	}
	if e := check(1, id); e != nil {
		t.Fatalf("member at the generation: %v", e)
	}
	if e := check(-1, ""); e != nil {
		t.Fatalf("commit naming no member to a group with members: %v", e)
	}

	// Reloaded by another coordinator, the pending offsets are there.
	snap := coord.GroupSnapshot{Name: "g", Meta: h.lastMeta(), Pending: []coord.PendingOffsets{{ProducerID: 7, Offsets: []coord.GroupOffset{off(tpA, 3)}}}}
	h.g.mu.Unlock()
	cfg := DefaultConfig()
	h2 := newGroupHarness(t)
	h2.g = restoreGroup(h2.env(&cfg), snap)
	if !h2.g.unstable()[tpA] {
		t.Fatal("pending offsets lost by a reload")
	}

	guard := coord.TxnGuard{NS: "ns", ID: "tx", Version: 9}
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	h.fail = coord.ErrTxnChanged
	if err := h.g.resolveTxn(guard, 7, true); err == nil || h.g.gone.Load() || len(h.g.offsets) != 0 || len(h.g.txn) != 1 {
		t.Fatalf("stale guard: %v, gone %v, offsets %v", err, h.g.gone.Load(), h.g.offsets)
	}
	h.fail = nil
	if err := h.g.resolveTxn(guard, 7, true); err != nil {
		t.Fatal(err)
	}
	rw := h.writes[len(h.writes)-1]
	if rw.Txn == nil || *rw.Txn != guard || len(rw.DeletePending) != 1 || rw.DeletePending[0] != 7 || len(rw.Offsets) != 2 {
		t.Fatalf("resolution write %+v", rw)
	}
	if h.g.offsets[tpA].Offset != 3 || h.g.offsets[tpB].Offset != 5 || h.g.unstable() != nil {
		t.Fatalf("after commit: offsets %v, unstable %v", h.g.offsets, h.g.unstable())
	}
	n := len(h.writes)
	if err := h.g.resolveTxn(guard, 7, true); err != nil || len(h.writes) != n {
		t.Fatalf("a resent resolution: %v, %d writes", err, len(h.writes)-n)
	}
	// A commit guarded by a transaction state that has moved on writes nothing and keeps the group.
	h.fail = coord.ErrTxnChanged
	if err := h.g.commitPending(8, 0, []coord.GroupOffset{off(tpA, 100)}, &guard); !errors.Is(err, coord.ErrTxnChanged) ||
		h.g.gone.Load() || len(h.g.txn) != 0 {
		t.Fatalf("commit with a stale guard: %v, gone %v, pending %v", err, h.g.gone.Load(), h.g.txn)
	}
	h.fail = nil
	// Abort: dropped.
	if err := h.g.commitPending(8, 0, []coord.GroupOffset{off(tpA, 100)}, &guard); err != nil {
		t.Fatal(err)
	}
	if rw := h.writes[len(h.writes)-1]; rw.Txn == nil || *rw.Txn != guard {
		t.Fatalf("guarded pending write %+v", rw)
	}
	if err := h.g.resolveTxn(guard, 8, false); err != nil {
		t.Fatal(err)
	}
	if rw := h.writes[len(h.writes)-1]; len(rw.Offsets) != 0 || h.g.offsets[tpA].Offset != 3 || len(h.g.txn) != 0 {
		t.Fatalf("after abort: write %+v, offsets %v", rw, h.g.offsets)
	}
}

// OffsetDelete of an Empty group drops the partitions' pending transactional offsets too, as Kafka's
// tombstone does: a producer left with others keeps those, one left with none has its pending offsets
// deleted; nothing else is touched.
func TestOffsetDeleteDropsPending(t *testing.T) {
	t.Parallel()
	h := newGroupHarness(t)
	tpA, tpB := coord.TP{Topic: coord.NewTopicID()}, coord.TP{Topic: coord.NewTopicID(), Partition: 1}
	off := func(tp coord.TP, o int64) coord.GroupOffset {
		return coord.GroupOffset{Topic: tp.Topic, Partition: tp.Partition, Offset: o}
	}
	h.g.mu.Lock()
	defer h.g.mu.Unlock()
	if h.g.state != groupEmpty {
		t.Fatalf("a new group in state %v", h.g.state)
	}
	for pid, offs := range map[int64][]coord.GroupOffset{7: {off(tpA, 1), off(tpB, 2)}, 8: {off(tpA, 3)}} {
		if err := h.g.commitPending(pid, 0, offs, nil); err != nil {
			t.Fatal(err)
		}
	}
	codes, code := h.g.deleteOffsets([]coord.TP{tpA}, map[coord.TopicID]string{tpA.Topic: "a"})
	if code != 0 || len(codes) != 1 || codes[0] != 0 {
		t.Fatalf("OffsetDelete: %v, %d", codes, code)
	}
	w := h.writes[len(h.writes)-1]
	if len(w.Pending) != 1 || w.Pending[0].ProducerID != 7 || len(w.Pending[0].Offsets) != 1 || w.Pending[0].Offsets[0].TP() != tpB ||
		len(w.DeletePending) != 1 || w.DeletePending[0] != 8 {
		t.Fatalf("OffsetDelete's write %+v: want 7 left with tpB, 8's deleted", w)
	}
	if u := h.g.unstable(); u[tpA] || !u[tpB] || len(h.g.txn) != 1 {
		t.Fatalf("after OffsetDelete: unstable %v, pending %v", u, h.g.txn)
	}
}
