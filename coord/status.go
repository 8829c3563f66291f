package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// ClusterStatus is what an operator asks first: who is alive, who leads what at which epoch, and
// how far each partition got. Its JSON form is the output of `streamhouse cluster status --json`.
type ClusterStatus struct {
	Agents     []AgentStatus     `json:"agents"`     // sorted by id
	Partitions []PartitionStatus `json:"partitions"` // sorted by topic, then partition
}

// AgentStatus is one registered agent.
type AgentStatus struct {
	ID            string `json:"id"`
	AZ            string `json:"az"`
	Group         string `json:"group"`
	Addr          string `json:"addr"`
	TTLSeconds    int64  `json:"ttl_seconds"`    // lease time left; 0 if it expired meanwhile
	PartitionsLed int    `json:"partitions_led"` // among Partitions
}

// PartitionStatus is one partition of a topic.
type PartitionStatus struct {
	Topic      string  `json:"topic"`
	Partition  int32   `json:"partition"`
	Leader     *string `json:"leader"`      // agent id; nil while the partition has no leader
	Epoch      int64   `json:"epoch"`       // create revision of the leader key; 0 without a leader
	NextOffset int64   `json:"next_offset"` // last index entry's LastOffset+1; 0 when empty
}

// statusAttempts bounds Status's retries when etcd compacts the revision it reads at.
const statusAttempts = 3

// Status reads the whole cluster at one etcd revision, so that leaders, epochs and next offsets
// agree with each other: a first linearizable Txn reads the agents, topics and leader keys, and
// every later read of the index is pinned to that Txn's revision. Only the lease TTLs are read
// afterwards (etcd has no revision for them). It is meant for operators, not hot paths: its cost
// grows with the number of partitions.
func (c *Client) Status(ctx context.Context) (ClusterStatus, error) {
	for attempt := 1; ; attempt++ {
		st, err := c.status(ctx)
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < statusAttempts {
			continue // the pinned revision was compacted between our reads: read afresh
		}
		return st, err
	}
}

func (c *Client) status(ctx context.Context) (ClusterStatus, error) {
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(c.keys.agents(), clientv3.WithPrefix()),
		clientv3.OpGet(c.keys.topics(), clientv3.WithPrefix()),
		clientv3.OpGet(c.keys.prefix+dirLeaders, clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("coord: status: %w", err)
	}
	rev := resp.Header.Revision
	parts, tps := c.statusPartitions(kvsOf(resp, 1), kvsOf(resp, 2))
	next, err := c.nextOffsets(ctx, rev, tps)
	if err != nil {
		return ClusterStatus{}, err
	}
	for i := range parts {
		parts[i].NextOffset = next[i]
	}
	agents, err := c.statusAgents(ctx, kvsOf(resp, 0), parts)
	if err != nil {
		return ClusterStatus{}, err
	}
	return ClusterStatus{Agents: agents, Partitions: parts}, nil
}

func kvsOf(resp *clientv3.TxnResponse, i int) []*mvccpb.KeyValue {
	return resp.Responses[i].GetResponseRange().GetKvs()
}

// statusPartitions lists every partition of every topic with its leader, and the TPs in the same
// order. Leader keys of topics that no longer exist are ignored.
func (c *Client) statusPartitions(topicKVs, leaderKVs []*mvccpb.KeyValue) ([]PartitionStatus, []TP) {
	leaders := make(map[TP]*mvccpb.KeyValue, len(leaderKVs))
	for _, kv := range leaderKVs {
		if pk := c.keys.parse(string(kv.Key)); pk.kind == kindLeader {
			leaders[pk.tp] = kv
		}
	}
	topics := make([]Topic, 0, len(topicKVs))
	for _, kv := range topicKVs {
		var t Topic
		if err := json.Unmarshal(kv.Value, &t); err != nil {
			c.log.Warn("status: skipping undecodable topic", "key", string(kv.Key), "error", err)
			continue
		}
		topics = append(topics, t)
	}
	slices.SortFunc(topics, func(a, b Topic) int { return strings.Compare(a.Name, b.Name) })
	parts := []PartitionStatus{} // not nil: JSON says [] for a cluster without topics
	var tps []TP
	for _, t := range topics {
		for p := range t.Partitions {
			ps := PartitionStatus{Topic: t.Name, Partition: p}
			if kv := leaders[t.TP(p)]; kv != nil {
				ps.Leader, ps.Epoch = new(string(kv.Value)), kv.CreateRevision
			}
			parts, tps = append(parts, ps), append(tps, t.TP(p))
		}
	}
	return parts, tps
}

// statusAgents lists the registered agents with their lease's time left and the partitions each
// leads. An undecodable registration is still listed, by the id in its key.
func (c *Client) statusAgents(ctx context.Context, kvs []*mvccpb.KeyValue, parts []PartitionStatus) ([]AgentStatus, error) {
	led := map[string]int{}
	for _, p := range parts {
		if p.Leader != nil {
			led[*p.Leader]++
		}
	}
	agents := make([]AgentStatus, 0, len(kvs))
	for _, kv := range kvs {
		id := c.keys.parse(string(kv.Key)).name
		var info AgentInfo
		if err := json.Unmarshal(kv.Value, &info); err != nil {
			c.log.Warn("status: undecodable agent registration", "key", string(kv.Key), "error", err)
		}
		ttl, err := c.leaseTTL(ctx, clientv3.LeaseID(kv.Lease))
		if err != nil {
			return nil, fmt.Errorf("coord: status: lease of agent %q: %w", id, err)
		}
		agents = append(agents, AgentStatus{ID: id, AZ: info.AZ, Group: info.Group, Addr: info.Addr,
			TTLSeconds: ttl, PartitionsLed: led[id]})
	}
	slices.SortFunc(agents, func(a, b AgentStatus) int { return strings.Compare(a.ID, b.ID) })
	return agents, nil
}

// leaseTTL is the seconds a lease has left; 0 for one that expired since the registration was read.
func (c *Client) leaseTTL(ctx context.Context, lease clientv3.LeaseID) (int64, error) {
	if lease == clientv3.NoLease {
		return 0, nil
	}
	resp, err := c.etcd.TimeToLive(ctx, lease)
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return max(0, resp.TTL), nil
}
