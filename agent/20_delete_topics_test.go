package agent

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

func deleteReqV6(topics ...kmsg.DeleteTopicsRequestTopic) *kmsg.DeleteTopicsRequest {
	req := kmsg.NewPtrDeleteTopicsRequest()
	req.Version = 6
	req.Topics = topics
	return req
}

func byName(n string) kmsg.DeleteTopicsRequestTopic {
	return kmsg.DeleteTopicsRequestTopic{Topic: sp(n)}
}

func byID(id coord.TopicID) kmsg.DeleteTopicsRequestTopic {
	return kmsg.DeleteTopicsRequestTopic{TopicID: id}
}

func TestDeleteTopicsByName(t *testing.T) {
	for v := int16(0); v <= 5; v++ {
		f := newFakeTopics(coord.Topic{Name: "a", Partitions: 1}, coord.Topic{Name: "b", Partitions: 1})
		ta := newFakeAdmin(t, f)
		req := kmsg.NewPtrDeleteTopicsRequest()
		req.Version = v
		req.TopicNames = []string{"a", "nope", "bad/name", "b", "b"}
		resp := ta.deleteTopics(testCtx(t), req)
		if len(resp.Topics) != 4 {
			t.Fatalf("v%d: %d answers, want one per name", v, len(resp.Topics))
		}
		for i, want := range []*kerr.Error{nil, kerr.UnknownTopicOrPartition, kerr.UnknownTopicOrPartition, kerr.InvalidRequest} {
			st := resp.Topics[i]
			checkCode(t, fmt.Sprintf("v%d %s", v, *st.Topic), st.ErrorCode, want)
		}
		if _, ok := f.get("a"); ok {
			t.Errorf("v%d: a not deleted", v)
		}
		if _, ok := f.get("b"); !ok {
			t.Errorf("v%d: b, named twice, was deleted", v)
		}
	}
}

func TestDeleteTopicsV6(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "a", Partitions: 1}, coord.Topic{Name: "b", Partitions: 1}, coord.Topic{Name: "c", Partitions: 1})
	ta := newFakeAdmin(t, f)
	a, _ := f.get("a")
	b, _ := f.get("b")
	c, _ := f.get("c")
	both := byName("c")
	both.TopicID = c.ID
	resp := ta.deleteTopics(testCtx(t), deleteReqV6(
		byName("a"), byID(b.ID), byID(coord.TopicID{9}), both, kmsg.DeleteTopicsRequestTopic{}, byName("zz")))
	want := []*kerr.Error{nil, nil, kerr.UnknownTopicID, kerr.InvalidRequest, kerr.InvalidRequest, kerr.UnknownTopicOrPartition}
	if len(resp.Topics) != len(want) {
		t.Fatalf("%d answers", len(resp.Topics))
	}
	for i, w := range want {
		checkCode(t, fmt.Sprintf("entry %d", i), resp.Topics[i].ErrorCode, w)
	}
	if st := resp.Topics[0]; st.TopicID != a.ID || *st.Topic != "a" {
		t.Errorf("by name: answered %v %x, want the id", st.Topic, st.TopicID)
	}
	if st := resp.Topics[1]; st.TopicID != b.ID || st.Topic == nil || *st.Topic != "b" {
		t.Errorf("by id: answered %v %x, want the name", st.Topic, st.TopicID)
	}
	if _, ok := f.get("c"); !ok {
		t.Error("c deleted by an invalid entry")
	}
	if _, ok := f.get("b"); ok {
		t.Error("b not deleted by id")
	}
}

func TestDeleteTopicsWaitsForView(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "a", Partitions: 1})
	ta := newFakeAdmin(t, f)
	f.freeze(true)
	req := deleteReqV6(byName("a"))
	req.TimeoutMillis = 30000
	checkCode(t, "unseen deletion", ta.deleteTopics(testCtx(t), req).Topics[0].ErrorCode, kerr.RequestTimedOut)
}

// TestDeleteTopicsGoneAtOnce checks, against a real agent, that a deleted topic is gone from Metadata as
// soon as DeleteTopics answers, by name and by id, and that the name can be used again.
func TestDeleteTopicsGoneAtOnce(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	ctx := testCtx(t)
	create := func(name string) [16]byte {
		t.Helper()
		resp, err := createReq(7, newTopic(name, 2, 1)).RequestWith(ctx, cl)
		if err != nil || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("create %s: %v %v", name, err, resp)
		}
		return resp.Topics[0].TopicID
	}
	known := func(name string) bool {
		t.Helper()
		req := kmsg.NewPtrMetadataRequest()
		req.Topics = []kmsg.MetadataRequestTopic{{Topic: sp(name)}}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code
	}

	first := create("d")
	resp, err := deleteReqV6(byName("d")).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	checkCode(t, "by name", resp.Topics[0].ErrorCode, nil)
	if resp.Topics[0].TopicID != first {
		t.Errorf("by name: answered id %x, want %x", resp.Topics[0].TopicID, first)
	}
	if known("d") {
		t.Error("deleted topic still in metadata")
	}

	second := create("d")
	if second == first {
		t.Error("re-created topic has the old id")
	}
	resp, err = deleteReqV6(byID(second)).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	checkCode(t, "by id", resp.Topics[0].ErrorCode, nil)
	if known("d") {
		t.Error("topic deleted by id still in metadata")
	}
	resp, err = deleteReqV6(byID(second)).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	checkCode(t, "again by id", resp.Topics[0].ErrorCode, kerr.UnknownTopicID)
}
