package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// OffsetForLeaderEpoch: v0-4
//
// Consumers ask, after a leader change, where the epoch they last read from ends, to detect a log
// truncated under them (KIP-320). Nothing here is ever truncated: a partition's epochs only grow along
// its offsets, so the answer — the first offset of a later epoch, or the high watermark — is never
// before a consumer's position. Any agent answers, as any agent serves Fetch. Clients use leader epochs
// (in Metadata, in KIP-951 hints) only from brokers that serve this API at v2 or later.
//
// The high watermark must be read from a view that has caught up with etcd: a lagging one could answer
// an end before the consumer's position, which it would take as lost data and rewind.
//
// Version notes:
// * v1: LeaderEpoch in the response
// * v2: CurrentLeaderEpoch (fencing), ThrottleMillis
// * v3: ReplicaID
// * v4: flexible versions
func (a *Agent) handleOffsetForLeaderEpoch(ctx context.Context, req *kmsg.OffsetForLeaderEpochRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	current := a.catchUp(ctx)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		t, known := a.cache.Topic(rt.Topic)
		known = known && a.servesTopic(t)
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			switch {
			case !known || rp.Partition < 0 || rp.Partition >= t.Partitions:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case !current:
				sp.ErrorCode = kerr.OffsetNotAvailable.Code // cut off from etcd: retriable
			default:
				tp := coord.TP{Topic: t.ID, Partition: rp.Partition}
				sp.ErrorCode = a.checkLeaderEpoch(tp, rp.CurrentLeaderEpoch)
				if sp.ErrorCode == 0 {
					epoch, end, _ := a.cache.EpochEnd(tp, int64(rp.LeaderEpoch))
					sp.LeaderEpoch, sp.EndOffset = int32(epoch), end
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// checkLeaderEpoch compares a client's idea of tp's leader epoch (-1: none) with this agent's, as Kafka
// does: an older one is fenced (the client refreshes its metadata), a newer one is not known yet.
func (a *Agent) checkLeaderEpoch(tp coord.TP, clientEpoch int32) int16 {
	l, ok := a.cache.Leader(tp)
	switch {
	case clientEpoch < 0 || !ok:
		return 0
	case clientEpoch < l.Epoch:
		return kerr.FencedLeaderEpoch.Code
	case clientEpoch > l.Epoch:
		return kerr.UnknownLeaderEpoch.Code
	}
	return 0
}
