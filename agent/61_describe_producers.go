package agent

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// DescribeProducers: v0
//
// The active producers of partitions (KIP-664), answered by each partition's leader (any other agent
// answers NOT_LEADER_OR_FOLLOWER, as Kafka's followers do): per producer its id and epoch, the last
// sequence and commit time of its newest batch, and the first offset of its open transaction on the
// partition (-1: none). The state is the leader's view of the partition's producer snapshots and
// uncommitted-to-segment entries, less the producers idle past --producer-id-expiration that have no
// open transaction (those the leader forgets). Coordinator epochs are not kept: -1.

func (a *Agent) handleDescribeProducers(req *kmsg.DescribeProducersRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeProducersResponse)
	now := time.Now()
	for _, rt := range req.Topics {
		st := kmsg.NewDescribeProducersResponseTopic()
		st.Topic = rt.Topic
		t, known := a.cache.Topic(rt.Topic)
		known = known && a.servesTopic(t)
		for _, p := range rt.Partitions {
			sp := kmsg.NewDescribeProducersResponseTopicPartition()
			sp.Partition = p
			if !known || p < 0 || p >= t.Partitions {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				sp.ActiveProducers, sp.ErrorCode = a.describeProducers(t.TP(p), now)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// describeProducers lists tp's active producers if this agent leads it.
func (a *Agent) describeProducers(tp coord.TP, now time.Time) ([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer, int16) {
	if a.lead.leading(tp) == nil {
		return nil, kerr.NotLeaderForPartition.Code
	}
	ps, ok := a.cache.PartitionState(tp)
	if !ok {
		return nil, kerr.UnknownTopicOrPartition.Code
	}
	cutoff := now.Add(-a.cfg.ProducerIDExpiration).UnixMilli()
	out := make([]kmsg.DescribeProducersResponseTopicPartitionActiveProducer, 0, len(ps.Producers))
	for _, s := range ps.Producers {
		if producerExpired(s, cutoff) {
			continue
		}
		ap := kmsg.NewDescribeProducersResponseTopicPartitionActiveProducer()
		ap.ProducerID, ap.ProducerEpoch, ap.CoordinatorEpoch = s.ID, int32(s.Epoch), -1
		if n := len(s.Batches); n > 0 {
			ap.LastSequence = s.Batches[n-1].LastSeq
		}
		if s.LastTime > 0 {
			ap.LastTimestamp = s.LastTime
		}
		if s.TxnOpen {
			ap.CurrentTxnStartOffset = s.TxnFirst
		}
		out = append(out, ap)
	}
	return out, 0
}

// producerExpired reports whether a producer idle since before cutoff (unix ms) is forgotten: one
// with an open transaction never is, as Kafka keeps it until the transaction's marker (its first
// offset holds the last stable offset back).
func producerExpired(s coord.ProducerState, cutoff int64) bool {
	return !s.TxnOpen && s.LastTime > 0 && s.LastTime < cutoff
}
