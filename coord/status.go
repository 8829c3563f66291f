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
	Epoch      int64   `json:"epoch"`       // the leader epoch clients are told; 0 without a leader
	LogStart   int64   `json:"log_start"`   // first offset a consumer can read
	NextOffset int64   `json:"next_offset"` // the high watermark
	Bytes      int64   `json:"bytes"`       // batch bytes held from the log start
	Segments   int     `json:"segments"`    // partition segments (one etcd key and one object each)
	Tail       int     `json:"tail"`        // uncompacted entries, in commit records
	Objects    int     `json:"objects"`     // distinct objects holding its batches
	// CleanTo and Tombstones are a compacted partition's cleaner progress: the offset below which its
	// segments are cleaned (0 when none ever was), and the tombstones cleans left in them.
	CleanTo    int64 `json:"clean_to,omitempty"`
	Tombstones int64 `json:"tombstones,omitempty"`
}

// statusAttempts bounds Status's retries when etcd compacts the revision it reads at.
const statusAttempts = 3

// Status reads the whole cluster at one etcd revision, so that leaders, epochs and offsets agree with
// each other: every key under the prefix at one revision, as a cache loads it, then the lease TTLs
// (etcd has no revision for them). It is meant for operators, not hot paths: its cost grows with the
// number of keys.
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
	st, rev, err := c.loadState(ctx, c.log)
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("coord: status: %w", err)
	}
	parts := statusPartitions(st)
	resp, err := c.etcd.Get(ctx, c.keys.agents(), clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return ClusterStatus{}, fmt.Errorf("coord: status: %w", err)
	}
	agents, err := c.statusAgents(ctx, resp.Kvs, parts)
	if err != nil {
		return ClusterStatus{}, err
	}
	return ClusterStatus{Agents: agents, Partitions: parts}, nil
}

// statusPartitions lists every partition of every topic, sorted by topic and partition.
func statusPartitions(st *state) []PartitionStatus {
	topics := make([]Topic, 0, len(st.topics))
	for _, t := range st.topics {
		topics = append(topics, t)
	}
	slices.SortFunc(topics, func(a, b Topic) int { return strings.Compare(a.Name, b.Name) })
	parts := []PartitionStatus{} // not nil: JSON says [] for a cluster without topics
	for _, t := range topics {
		for p := range t.Partitions {
			ps := PartitionStatus{Topic: t.Name, Partition: p}
			if l, ok := st.leaders[t.TP(p)]; ok {
				ps.Leader, ps.Epoch = new(l.agent), int64(l.epoch)
			}
			if part := st.parts[t.TP(p)]; part != nil {
				part.describe(&ps)
			}
			parts = append(parts, ps)
		}
	}
	return parts
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
