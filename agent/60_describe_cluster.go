package agent

import (
	"context"
	"math"
	"net"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// DescribeCluster: v0-1
//
// KIP-700. The brokers are those Metadata reports: the live agents of this agent's group, their zone
// as rack. Every agent answers admin requests, so the controller is the agent asked. Authorized
// operations are not computed (there are no ACLs) and are reported as unknown (MinInt32).
//
// Version notes:
// * v1: EndpointType (KIP-919): agents are brokers (1); anything else is UNSUPPORTED_ENDPOINT_TYPE

func (a *Agent) handleDescribeCluster(ctx context.Context, c client, req *kmsg.DescribeClusterRequest) kmsg.Response {
	return describeCluster(req, a.nodeID(a.cfg.ID), a.brokersFor(c), a.nodeID)
}

const endpointTypeBrokers = 1

func describeCluster(req *kmsg.DescribeClusterRequest, self int32, agents []coord.AgentInfo, nodeID func(string) int32) *kmsg.DescribeClusterResponse {
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	resp.ClusterAuthorizedOperations = math.MinInt32
	if req.Version >= 1 {
		resp.EndpointType = req.EndpointType
		if req.EndpointType != endpointTypeBrokers {
			msg := "only the brokers endpoint type (1) is supported: StreamHouse agents have no separate controllers"
			resp.ErrorCode, resp.ErrorMessage = kerr.UnsupportedEndpointType.Code, &msg
			return resp
		}
	}
	resp.ClusterID = clusterID
	resp.ControllerID = self
	for _, ag := range agents {
		if b, ok := clusterBroker(ag, nodeID(ag.ID)); ok {
			resp.Brokers = append(resp.Brokers, b)
		}
	}
	return resp
}

// clusterBroker describes one agent; an agent whose address cannot be parsed is left out, as Metadata
// leaves it out.
func clusterBroker(ag coord.AgentInfo, node int32) (kmsg.DescribeClusterResponseBroker, bool) {
	b := kmsg.NewDescribeClusterResponseBroker()
	host, port, err := net.SplitHostPort(ag.Addr)
	if err != nil {
		return b, false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return b, false
	}
	b.NodeID, b.Host, b.Port = node, host, int32(p)
	if ag.AZ != "" {
		az := ag.AZ
		b.Rack = &az
	}
	return b, true
}
