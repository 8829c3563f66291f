package agent

import (
	"context"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/lifecycle"
	"github.com/streamhouse/streamhouse/coord"
)

// DeleteRecords: v0-2
//
// Moves a partition's log start (its low watermark) up to the offset asked for (-1: the high
// watermark), as Kafka's `kafka-delete-records` does: records below it are no longer served (fetches
// there answer OFFSET_OUT_OF_RANGE) and leave the bucket with their segments. Like every change to a
// partition's index it is made by the partition's leader, fenced by its epoch (a non-leader answers
// NOT_LEADER_OR_FOLLOWER, and clients send it to the leader); an offset past the high watermark is
// OFFSET_OUT_OF_RANGE; one at or below the log start changes nothing.
//
// Version notes:
// * v1: same as v0
// * v2: flexible versions

func (a *Agent) handleDeleteRecords(ctx context.Context, c client, req *kmsg.DeleteRecordsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	if req.TimeoutMillis > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, min(time.Duration(req.TimeoutMillis)*time.Millisecond, maxAdminWait))
		defer cancel()
	}
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		t, known := a.cache.Topic(rt.Topic)
		known = known && a.servesTopic(t)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition, sp.LowWatermark = rp.Partition, -1
			if !known || rp.Partition < 0 || rp.Partition >= t.Partitions {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			} else {
				sp.LowWatermark, sp.ErrorCode = a.deleteRecords(ctx, t, rp.Partition, rp.Offset)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// deleteRecords moves the log start of t's partition p to offset, if this agent leads it.
func (a *Agent) deleteRecords(ctx context.Context, t coord.Topic, p int32, offset int64) (int64, int16) {
	tp := t.TP(p)
	pl, s := a.lead.leading(tp), a.lead.session()
	if pl == nil || s == nil {
		return -1, kerr.NotLeaderForPartition.Code
	}
	if offset < -1 {
		return -1, kerr.OffsetOutOfRange.Code
	}
	start, err := a.maintainer.DeleteRecords(ctx, lifecycle.Lead{TP: tp, Topic: t, Epoch: pl.epoch}, s, offset)
	if err != nil {
		a.log.Warn("delete records failed", "topic", t.Name, "partition", p, "offset", offset, "error", err)
		return -1, kafkaCode(err)
	}
	a.log.Info("log start moved by DeleteRecords", "topic", t.Name, "partition", p, "log_start", start)
	return start, 0
}
