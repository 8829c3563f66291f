package agent

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/group"
	"github.com/streamhouse/streamhouse/coord"
)

// splitFailStore makes the next offset commit, once armed, apply in part: its first two offsets are
// written and the rest fail, as coord.WriteGroup leaves a write whose second Txn failed
// (coord.TestGroupWriteSplitPartialApply).
type splitFailStore struct {
	group.Store
	armed atomic.Bool
}

func (s *splitFailStore) WriteGroup(ctx context.Context, f coord.GroupFence, ns, group string, w coord.GroupWrite) (int64, error) {
	if len(w.Offsets) <= 2 || !s.armed.CompareAndSwap(true, false) {
		return s.Store.WriteGroup(ctx, f, ns, group, w)
	}
	first := w
	first.Offsets = w.Offsets[:2]
	if _, err := s.Store.WriteGroup(ctx, f, ns, group, first); err != nil {
		return 0, err
	}
	return 0, errors.New("injected: the second Txn of a split group write failed")
}

// An offset commit that applied in part is answered with a retriable error; the coordinator then
// serves exactly what etcd holds (each partition at the offset it had or the one asked for, never
// another), and the client's retry, or franz-go's own, commits the whole. A partial apply is what a
// client would also see had it sent the same commit as several smaller ones and lost the connection
// after the first: nothing it may not already meet (see coord.WriteGroup).
func TestOffsetCommitPartialApplyIsRetried(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.newAgent("a1")
	store := &splitFailStore{}
	a.groups.WrapStore(func(s group.Store) group.Store { store.Store = s; return store })
	startAgent(t, a)
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "split", 4, nil)
	adm := kadm.NewClient(cl)
	offsets := func(base int64) kadm.Offsets {
		o := kadm.Offsets{}
		for p := range int32(4) {
			o.AddOffset("split", p, base+int64(p), -1)
		}
		return o
	}
	committed := func() []int64 {
		t.Helper()
		fetched, err := adm.FetchOffsets(testCtx(t), "g")
		if err == nil {
			err = fetched.Error()
		}
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for p := range int32(4) {
			r, _ := fetched.Lookup("split", p)
			out = append(out, r.At)
		}
		return out
	}
	wantCommitted := func(what string, want ...int64) {
		t.Helper()
		got := committed()
		for p := range want {
			if got[p] != want[p] {
				t.Fatalf("%s: committed %v, want %v", what, got, want)
			}
		}
	}
	if resp, err := adm.CommitOffsets(testCtx(t), "g", offsets(1)); err != nil || resp.Error() != nil {
		t.Fatalf("first commit: %v, %v", err, resp.Error())
	}

	store.armed.Store(true)
	c := dialRaw(t, a)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = "g", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "split"
	for p := range int32(4) {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = p, 10+int64(p)
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req, 8).(*kmsg.OffsetCommitResponse)
	for _, sp := range resp.Topics[0].Partitions {
		wantCode(t, "a commit that applied in part", sp.ErrorCode, kerr.CoordinatorNotAvailable)
		if !kerr.IsRetriable(kerr.ErrorForCode(sp.ErrorCode)) {
			t.Fatalf("%s is not retriable", errName(sp.ErrorCode))
		}
	}
	wantCommitted("after a commit that applied in part", 10, 11, 3, 4)

	resp = c.roundTrip(req, 8).(*kmsg.OffsetCommitResponse)
	for _, sp := range resp.Topics[0].Partitions {
		wantOK(t, "the retried commit", sp.ErrorCode)
	}
	wantCommitted("after the retry", 10, 11, 12, 13)

	store.armed.Store(true)
	if resp, err := adm.CommitOffsets(testCtx(t), "g", offsets(20)); err != nil || resp.Error() != nil {
		t.Fatalf("franz-go commit that applied in part at first: %v, %v", err, resp.Error())
	}
	if store.armed.Load() {
		t.Fatal("the partial apply was never injected")
	}
	wantCommitted("after franz-go's commit", 20, 21, 22, 23)
}
