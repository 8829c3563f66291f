package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A handler that panics closes only its own connection: the agent keeps serving every other
// connection, counts the panic, and keeps running. Without the recover, the panic killed the process
// (in dev mode etcd and S3 with it). Produce is covered too: its first half runs on the connection's
// reading goroutine.
func TestHandlerPanicClosesOnlyItsConnection(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.newAgent("a1")
	a.beforeHandle = func(req kmsg.Request) {
		switch r := req.(type) {
		case *kmsg.DescribeClusterRequest:
			panic("handler bug")
		case *kmsg.ProduceRequest:
			if r.Topics[0].Topic == "boom" {
				panic("produce bug")
			}
		}
	}
	startAgent(t, a)

	bystander := dialRaw(t, a)
	bystander.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)

	c := dialRaw(t, a)
	c.send(kmsg.NewPtrDescribeClusterRequest(), 0)
	c.expectClosed()

	p := dialRaw(t, a)
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "boom"
	rt.Partitions = append(rt.Partitions, kmsg.NewProduceRequestTopicPartition())
	req.Topics = append(req.Topics, rt)
	p.send(req, 9)
	p.expectClosed()

	md := bystander.roundTrip(kmsg.NewPtrMetadataRequest(), 9).(*kmsg.MetadataResponse)
	if len(md.Brokers) != 1 {
		t.Fatalf("metadata after the panics: %d brokers, want 1", len(md.Brokers))
	}
	if n := metricValue(t, a, "streamhouse_request_panics_total"); n != 2 {
		t.Errorf("streamhouse_request_panics_total = %v, want 2", n)
	}
}
