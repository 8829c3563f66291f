// Package group is the consumer group coordinator: the group state machine (join, sync, heartbeat,
// leave, rebalance timers, static members; group.go, group_join.go), committed offsets and their
// retention (group_offsets.go), and the coordinator that serves the groups of the shards this agent
// leads (group_coordinator.go), with the group APIs as the agent's handlers call them (requests.go,
// offset_requests.go).
//
// Group coordination rides on partition leadership. Each agent group has an internal offsets topic
// whose partitions are the coordinator shards: a consumer group hashes to one shard (Shard), and the
// agent leading that partition is the group's coordinator. The topic holds no records; the shard's
// leader key is what matters: every etcd write of the shard's groups is fenced by its create
// revision, the Leadership's Epoch (coord.WriteGroup), so a coordinator that lost its shard can never
// change a group. A coordinator loads a shard's groups from etcd when it starts leading it (the read
// follows the acquisition, so it sees every write of the previous coordinators), serves them from
// memory, and drops them at once when it stops leading: their members get NOT_COORDINATOR, find the
// new coordinator and carry on there.
//
// The coordinator decides nothing about leadership: the agent tells it what it leads (Deps.Leader)
// and takes back a leadership whose write was fenced (Deps.Lost). It reaches etcd only through Store
// and the watched view only through View, both declared here. It must not import agent or any other
// agent/internal package, and it never sees a connection: requests come decoded (kmsg), with the
// sender as a Client.
package group
