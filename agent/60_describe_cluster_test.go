package agent

import (
	"math"
	"net"
	"strconv"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

func TestDescribeCluster(t *testing.T) {
	agents := []coord.AgentInfo{
		{ID: "a1", Addr: "10.0.0.1:9092", AZ: "eu-1a"},
		{ID: "a2", Addr: "[::1]:9093"},
		{ID: "bad", Addr: "no-port"},
		{ID: "bad2", Addr: "h:99999"},
	}
	for v := int16(0); v <= 1; v++ {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.Version = v
		resp := describeCluster(req, 7, agents, nodeID)
		checkCode(t, "describe", resp.ErrorCode, nil)
		if resp.ClusterID != clusterID || resp.ControllerID != 7 || resp.ClusterAuthorizedOperations != math.MinInt32 {
			t.Errorf("v%d: cluster %q controller %d ops %d", v, resp.ClusterID, resp.ControllerID, resp.ClusterAuthorizedOperations)
		}
		if v == 1 && resp.EndpointType != 1 {
			t.Errorf("v1: endpoint type %d", resp.EndpointType)
		}
		if len(resp.Brokers) != 2 {
			t.Fatalf("v%d: brokers %+v, want the two with valid addresses", v, resp.Brokers)
		}
		b1, b2 := resp.Brokers[0], resp.Brokers[1]
		if b1.NodeID != nodeID("a1") || b1.Host != "10.0.0.1" || b1.Port != 9092 || b1.Rack == nil || *b1.Rack != "eu-1a" {
			t.Errorf("broker a1: %+v", b1)
		}
		if b2.NodeID != nodeID("a2") || b2.Host != "::1" || b2.Port != 9093 || b2.Rack != nil {
			t.Errorf("broker a2: %+v", b2)
		}
	}

	req := kmsg.NewPtrDescribeClusterRequest()
	req.Version = 1
	req.EndpointType = 2
	resp := describeCluster(req, 7, agents, nodeID)
	checkCode(t, "controllers endpoint", resp.ErrorCode, kerr.UnsupportedEndpointType)
	if resp.ErrorMessage == nil || len(resp.Brokers) != 0 || resp.EndpointType != 2 {
		t.Errorf("controllers endpoint: %+v", resp)
	}
}

func TestDescribeClusterOfAgent(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.AZ = "z1" })
	tc.agent("other", func(c *Config) { c.Group = "g2" })
	cl := kgoClient(t, nil, a)
	resp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	checkCode(t, "describe", resp.ErrorCode, nil)
	host, port, _ := net.SplitHostPort(a.KafkaAddr())
	if resp.ControllerID != nodeID("a1") || len(resp.Brokers) != 1 {
		t.Fatalf("controller %d, brokers %+v: want a1 only (other is another group)", resp.ControllerID, resp.Brokers)
	}
	b := resp.Brokers[0]
	if b.NodeID != nodeID("a1") || b.Host != host || strconv.Itoa(int(b.Port)) != port || b.Rack == nil || *b.Rack != "z1" {
		t.Errorf("broker %+v, want a1 at %s in z1", b, a.KafkaAddr())
	}
}

// TestAutoCreateTopicsOnMetadata checks that a Metadata request creates an unknown topic when the
// agent allows it, with the default partition count, and answers for it at once.
func TestAutoCreateTopicsOnMetadata(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.AutoCreateTopics = true; c.DefaultPartitions = 3 })
	cl := kgoClient(t, nil, a)
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = true
	req.Topics = []kmsg.MetadataRequestTopic{{Topic: sp("auto")}, {Topic: sp("bad/name")}}
	resp, err := req.RequestWith(testCtx(t), cl)
	if err != nil {
		t.Fatal(err)
	}
	if st := resp.Topics[0]; st.ErrorCode == kerr.UnknownTopicOrPartition.Code || len(st.Partitions) != 3 {
		t.Errorf("auto-created topic: %s, %d partitions", codeName(st.ErrorCode), len(st.Partitions))
	}
	checkCode(t, "invalid name", resp.Topics[1].ErrorCode, kerr.InvalidTopicException)
}
