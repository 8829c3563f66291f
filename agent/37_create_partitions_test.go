package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

func partitionsReq(topics ...kmsg.CreatePartitionsRequestTopic) *kmsg.CreatePartitionsRequest {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version = 3
	req.Topics = topics
	return req
}

func grow(name string, count int32) kmsg.CreatePartitionsRequestTopic {
	return kmsg.CreatePartitionsRequestTopic{Topic: name, Count: count}
}

func TestCreatePartitions(t *testing.T) {
	assigned := grow("t", 5)
	assigned.Assignment = []kmsg.CreatePartitionsRequestTopicAssignment{{Replicas: []int32{7}}}
	for _, tc := range []struct {
		what string
		rt   kmsg.CreatePartitionsRequestTopic
		code *kerr.Error
		want int32 // partitions stored after
	}{
		{"grow", grow("t", 5), nil, 5},
		{"grow by one", grow("t", 4), nil, 4},
		{"to the limit", grow("t", maxPartitionsPerTopic), nil, maxPartitionsPerTopic},
		{"same", grow("t", 3), kerr.InvalidPartitions, 3},
		{"fewer", grow("t", 1), kerr.InvalidPartitions, 3},
		{"zero", grow("t", 0), kerr.InvalidPartitions, 3},
		{"negative", grow("t", -1), kerr.InvalidPartitions, 3},
		{"over the limit", grow("t", maxPartitionsPerTopic+1), kerr.InvalidPartitions, 3},
		{"assignment", assigned, kerr.InvalidRequest, 3},
		{"unknown", grow("nope", 5), kerr.UnknownTopicOrPartition, 3},
		{"invalid name", grow("", 5), kerr.UnknownTopicOrPartition, 3},
	} {
		f := newFakeTopics(coord.Topic{Name: "t", Partitions: 3, Configs: map[string]string{"max.message.bytes": "7"}})
		ta := newFakeAdmin(t, f)
		resp := ta.createPartitions(testCtx(t), partitionsReq(tc.rt))
		if len(resp.Topics) != 1 || resp.Topics[0].Topic != tc.rt.Topic {
			t.Fatalf("%s: answers %+v", tc.what, resp.Topics)
		}
		st := resp.Topics[0]
		checkCode(t, tc.what, st.ErrorCode, tc.code)
		if tc.code != nil && (st.ErrorMessage == nil || *st.ErrorMessage == "") {
			t.Errorf("%s: no message", tc.what)
		}
		if got, _ := f.get("t"); got.Partitions != tc.want || got.Configs["max.message.bytes"] != "7" {
			t.Errorf("%s: stored %+v, want %d partitions and the configs kept", tc.what, got, tc.want)
		}
	}
}

func TestCreatePartitionsValidateOnlyAndDuplicates(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "t", Partitions: 3}, coord.Topic{Name: "u", Partitions: 1})
	ta := newFakeAdmin(t, f)
	req := partitionsReq(grow("t", 5), grow("t", 6), grow("u", 2), grow("u", 1))
	resp := ta.createPartitions(testCtx(t), req)
	if len(resp.Topics) != 2 {
		t.Fatalf("%d answers, want one per name", len(resp.Topics))
	}
	checkCode(t, "t", resp.Topics[0].ErrorCode, kerr.InvalidRequest)
	checkCode(t, "u", resp.Topics[1].ErrorCode, kerr.InvalidRequest)

	req = partitionsReq(grow("t", 5), grow("u", 1))
	req.ValidateOnly = true
	resp = ta.createPartitions(testCtx(t), req)
	checkCode(t, "valid", resp.Topics[0].ErrorCode, nil)
	checkCode(t, "invalid", resp.Topics[1].ErrorCode, kerr.InvalidPartitions)
	if f.writeCount() != 0 {
		t.Error("a request with duplicates or validate-only wrote")
	}
}

func TestCreatePartitionsWaitsForView(t *testing.T) {
	f := newFakeTopics(coord.Topic{Name: "t", Partitions: 3})
	ta := newFakeAdmin(t, f)
	f.freeze(true)
	req := partitionsReq(grow("t", 5))
	req.TimeoutMillis = 30000
	checkCode(t, "unseen", ta.createPartitions(testCtx(t), req).Topics[0].ErrorCode, kerr.RequestTimedOut)
	if got, _ := f.get("t"); got.Partitions != 5 {
		t.Errorf("stored %d partitions", got.Partitions)
	}
}

// TestCreatePartitionsShownAtOnce checks, against a real agent, that new partitions are in Metadata as
// soon as CreatePartitions answers.
func TestCreatePartitionsShownAtOnce(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	ctx := testCtx(t)
	if resp, err := createReq(7, newTopic("p", 2, 1)).RequestWith(ctx, cl); err != nil || resp.Topics[0].ErrorCode != 0 {
		t.Fatalf("create: %v %v", err, resp)
	}
	resp, err := partitionsReq(grow("p", 5)).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	checkCode(t, "grow", resp.Topics[0].ErrorCode, nil)
	mreq := kmsg.NewPtrMetadataRequest()
	mreq.Topics = []kmsg.MetadataRequestTopic{{Topic: sp("p")}}
	mresp, err := mreq.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(mresp.Topics[0].Partitions); n != 5 {
		t.Errorf("metadata right after growing: %d partitions, want 5", n)
	}
	resp, err = partitionsReq(grow("p", 4)).RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	checkCode(t, "shrink", resp.Topics[0].ErrorCode, kerr.InvalidPartitions)
}
