package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// OffsetCommit: v0-8
//
// A commit is acknowledged only once it is in etcd, written by a Txn fenced by the group's
// coordinator shard (coord.WriteGroup): a coordinator that lost its shard cannot commit. Members
// commit at their generation; a commit without one (generation -1: admin tools, consumers without
// group management) is taken only while the group is Empty, and creates the group if needed, as in
// Kafka. Offsets of unknown topics or partitions answer UNKNOWN_TOPIC_OR_PARTITION, metadata longer
// than 4096 bytes OFFSET_METADATA_TOO_LARGE. Retention times are ignored: offsets are kept until the
// group or the topic is deleted.
//
// Version notes:
// * v1: Generation, MemberID; a per-partition Timestamp (ignored)
// * v2-4: RetentionTimeMillis (ignored)
// * v3: ThrottleMillis
// * v6: LeaderEpoch of each committed offset (KIP-320)
// * v7: InstanceID (KIP-345)
// * v8: flexible versions

func (a *Agent) handleOffsetCommit(ctx context.Context, c client, req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	setAll := func(code int16) {
		for i := range resp.Topics {
			for j := range resp.Topics[i].Partitions {
				resp.Topics[i].Partitions[j].ErrorCode = code
			}
		}
	}
	if req.Group == "" {
		setAll(kerr.InvalidGroupID.Code)
		return resp
	}
	offs := a.commitOffsets(req, resp)
	var e *kerr.Error
	code := a.groups.withGroup(ctx, req.Group, req.Generation < 0, func(g *group) {
		if g == nil { // a member's commit to a group this coordinator does not know
			e = kerr.IllegalGeneration
			return
		}
		m, ce := g.commitCheck(req)
		if ce != nil {
			e = ce
			return
		}
		if err := g.commit(m, offs); err != nil {
			e = kerr.ErrorForCode(g.failCode()).(*kerr.Error)
		}
	})
	if code != 0 {
		setAll(code)
	} else if e != nil {
		setAll(e.Code)
	}
	return resp
}

// commitOffsets resolves the partitions of a commit, answering those that cannot be committed.
func (a *Agent) commitOffsets(req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse) []coord.GroupOffset {
	now := a.groups.cfg.now().UnixMilli()
	var offs []coord.GroupOffset
	for i, rt := range req.Topics {
		t, ok := a.cache.Topic(rt.Topic)
		ok = ok && a.servesTopic(t)
		for j, rp := range rt.Partitions {
			sp := &resp.Topics[i].Partitions[j]
			switch {
			case !ok || rp.Partition < 0 || rp.Partition >= t.Partitions:
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
			case rp.Metadata != nil && len(*rp.Metadata) > a.groups.cfg.maxMetadataBytes:
				sp.ErrorCode = kerr.OffsetMetadataTooLarge.Code
			default:
				o := coord.GroupOffset{Topic: t.ID, Partition: rp.Partition, Offset: rp.Offset, LeaderEpoch: rp.LeaderEpoch, CommitMs: now}
				if req.Version < 6 {
					o.LeaderEpoch = -1
				}
				if rp.Metadata != nil {
					o.Metadata = *rp.Metadata
				}
				offs = append(offs, o)
			}
		}
	}
	return offs
}
