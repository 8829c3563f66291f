package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func createTopicsReq(partitions int32, names ...string) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 1000
	for _, n := range names {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = n, partitions, 1
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// One CreateTopics may create at most --max-partitions-per-request partitions, as Kafka's controller
// refuses more than 10,000: past it every topic of the request is refused with POLICY_VIOLATION and
// nothing is created. (Before, one request of 10 topics of 10,000 partitions created 100,000.)
func TestCreateTopicsPartitionsPerRequest(t *testing.T) {
	t.Parallel()
	f := newFakeTopics()
	ta := newFakeAdmin(t, f, withLimits(func(l *Limits) { l.MaxPartitionsPerRequest = 10 }))
	resp := ta.createTopics(testCtx(t), createTopicsReq(4, "a", "b", "c"))
	for _, st := range resp.Topics {
		wantCode(t, st.Topic, st.ErrorCode, kerr.PolicyViolation)
	}
	if f.writes != 0 {
		t.Fatalf("%d etcd writes for a refused request", f.writes)
	}
	resp = ta.createTopics(testCtx(t), createTopicsReq(5, "a", "b"))
	for _, st := range resp.Topics {
		wantOK(t, st.Topic, st.ErrorCode)
	}
}

// The cluster holds at most --max-partitions: a topic that would pass it is refused with
// POLICY_VIOLATION, counting the partitions created earlier in the same request, and so is growing a
// topic past it.
func TestClusterPartitionsCapped(t *testing.T) {
	t.Parallel()
	f := newFakeTopics()
	ta := newFakeAdmin(t, f, withLimits(func(l *Limits) { l.MaxPartitions = 10 }))
	resp := ta.createTopics(testCtx(t), createTopicsReq(4, "a", "b", "c"))
	wantOK(t, "a", resp.Topics[0].ErrorCode)
	wantOK(t, "b", resp.Topics[1].ErrorCode)
	wantCode(t, "c", resp.Topics[2].ErrorCode, kerr.PolicyViolation)

	grow := kmsg.NewPtrCreatePartitionsRequest()
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = "a", 7
	grow.Topics = append(grow.Topics, rt)
	gresp := ta.createPartitions(testCtx(t), grow)
	wantCode(t, "grow a to 7", gresp.Topics[0].ErrorCode, kerr.PolicyViolation)
	grow.Topics[0].Count = 6
	gresp = ta.createPartitions(testCtx(t), grow)
	wantOK(t, "grow a to 6", gresp.Topics[0].ErrorCode)
}

// Growing topics in one CreatePartitions counts against --max-partitions-per-request too.
func TestCreatePartitionsPerRequest(t *testing.T) {
	t.Parallel()
	f := newFakeTopics()
	ta := newFakeAdmin(t, f, withLimits(func(l *Limits) { l.MaxPartitionsPerRequest = 10 }))
	resp := ta.createTopics(testCtx(t), createTopicsReq(1, "a", "b"))
	for _, st := range resp.Topics {
		wantOK(t, st.Topic, st.ErrorCode)
	}
	grow := kmsg.NewPtrCreatePartitionsRequest()
	for _, n := range []string{"a", "b"} {
		rt := kmsg.NewCreatePartitionsRequestTopic()
		rt.Topic, rt.Count = n, 7 // 6 new each: 12 in all
		grow.Topics = append(grow.Topics, rt)
	}
	gresp := ta.createPartitions(testCtx(t), grow)
	for _, st := range gresp.Topics {
		wantCode(t, st.Topic, st.ErrorCode, kerr.PolicyViolation)
	}
}
