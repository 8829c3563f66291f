package agent

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
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
	return a.groups.OffsetCommit(ctx, req)
}
