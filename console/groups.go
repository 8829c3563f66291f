package console

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// Offsets topics name the agent groups whose consumer groups exist: __consumer_offsets is the default
// agent group's, __consumer_offsets.<g> agent group g's (agent/group_coordinator.go).
const (
	offsetsTopic      = "__consumer_offsets"
	defaultAgentGroup = "default"
)

// groupView is one consumer group as the console shows it.
type groupView struct {
	AgentGroup   string // the namespace of its keys: the agent group serving it
	Name         string
	State        string
	Generation   int32
	ProtocolType string
	Protocol     string
	Members      []memberView
	Partitions   []lagView
	TotalLag     int64
}

type memberView struct {
	ID, InstanceID, ClientID, ClientHost string
	Assigned                             string // topic[p,p] topic[p]
}

type lagView struct {
	Topic         string
	Partition     int32
	Committed     int64
	HighWatermark int64
	Lag           int64
	Member        string // client id of the member assigned the partition; "" when none
}

// agentGroups are the agent groups that may hold consumer groups: those with an offsets topic, and
// those of the live agents.
func agentGroups(st coord.ClusterStatus, topics []coord.Topic) []string {
	set := map[string]bool{}
	for _, t := range topics {
		if t.Name == offsetsTopic {
			set[defaultAgentGroup] = true
		} else if g, ok := strings.CutPrefix(t.Name, offsetsTopic+"."); ok && g != "" {
			set[g] = true
		}
	}
	for _, a := range st.Agents {
		if a.Group != "" {
			set[a.Group] = true
		}
	}
	out := make([]string, 0, len(set))
	for g := range set {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// loadGroups reads every consumer group of every agent group and works out its lag from the view.
func loadGroups(ctx context.Context, store GroupStore, st coord.ClusterStatus, topics []coord.Topic) ([]groupView, error) {
	names := map[coord.TopicID]string{}
	for _, t := range topics {
		names[t.ID] = t.Name
	}
	hwm := map[string]int64{}
	for _, p := range st.Partitions {
		hwm[tpKey(p.Topic, p.Partition)] = p.NextOffset
	}
	var out []groupView
	for _, ns := range agentGroups(st, topics) {
		snaps, err := store.LoadGroups(ctx, ns, func(string) bool { return true })
		if err != nil {
			return nil, fmt.Errorf("consumer groups of agent group %s: %w", ns, err)
		}
		for _, s := range snaps {
			out = append(out, buildGroup(ns, s, names, hwm))
		}
	}
	slices.SortFunc(out, func(a, b groupView) int {
		return strings.Compare(a.AgentGroup+"\x00"+a.Name, b.AgentGroup+"\x00"+b.Name)
	})
	return out, nil
}

func tpKey(topic string, p int32) string { return fmt.Sprintf("%s/%d", topic, p) }

// buildGroup is one group's members, assignments and lag. Offsets of deleted topics are left out,
// as OffsetFetch leaves them out.
func buildGroup(ns string, s coord.GroupSnapshot, names map[coord.TopicID]string, hwm map[string]int64) groupView {
	g := groupView{AgentGroup: ns, Name: s.Name}
	owner := map[string]string{} // topic/partition → client id
	if m := s.Meta; m != nil {
		g.State, g.Generation, g.ProtocolType, g.Protocol = m.State, m.Generation, m.ProtocolType, m.Protocol
		for _, mem := range m.Members {
			mv := memberView{ID: mem.ID, ClientID: mem.ClientID, ClientHost: mem.ClientHost}
			if mem.InstanceID != nil {
				mv.InstanceID = *mem.InstanceID
			}
			assigned := decodeAssignment(m.ProtocolType, mem.Assignment)
			mv.Assigned = formatAssigned(assigned)
			for topic, ps := range assigned {
				for _, p := range ps {
					owner[tpKey(topic, p)] = mem.ClientID
				}
			}
			g.Members = append(g.Members, mv)
		}
	}
	for _, o := range s.Offsets {
		topic, ok := names[o.Topic]
		if !ok {
			continue
		}
		k := tpKey(topic, o.Partition)
		l := lagView{Topic: topic, Partition: o.Partition, Committed: o.Offset, HighWatermark: hwm[k], Member: owner[k]}
		l.Lag = max(0, l.HighWatermark-l.Committed)
		g.TotalLag += l.Lag
		g.Partitions = append(g.Partitions, l)
	}
	slices.SortFunc(g.Partitions, func(a, b lagView) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	return g
}

// decodeAssignment reads a consumer member's assignment (Kafka's ConsumerMemberAssignment, as the
// group leader sent it in SyncGroup). Anything else, or bytes that do not decode, assign nothing: the
// console shows what it can and never fails on a client's bytes.
func decodeAssignment(protocolType string, b []byte) map[string][]int32 {
	if protocolType != "consumer" || len(b) == 0 {
		return nil
	}
	var a kmsg.ConsumerMemberAssignment
	if err := a.ReadFrom(b); err != nil {
		return nil
	}
	out := map[string][]int32{}
	for _, t := range a.Topics {
		if !kafkaTopicName(t.Topic) { // no such topic can exist: the member sent made-up bytes
			continue
		}
		out[t.Topic] = append(out[t.Topic], t.Partitions...)
	}
	return out
}

// kafkaTopicName reports whether name is a topic name Kafka (and StreamHouse) can hold: 1 to 249 of
// ASCII letters, digits, '.', '_' and '-'.
func kafkaTopicName(name string) bool {
	if len(name) == 0 || len(name) > 249 {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// formatAssigned writes an assignment as topic[p,p] topic[p], sorted.
func formatAssigned(a map[string][]int32) string {
	var parts []string
	for topic, ps := range a {
		ps = slices.Clone(ps)
		slices.Sort(ps)
		nums := make([]string, len(ps))
		for i, p := range ps {
			nums[i] = fmt.Sprint(p)
		}
		parts = append(parts, topic+"["+strings.Join(nums, ",")+"]")
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// groups are the consumer groups, read from etcd at most once per groupsFresh however many pages ask.
func (c *Console) groups(ctx context.Context, st coord.ClusterStatus, topics []coord.Topic) ([]groupView, error) {
	c.groupsMu.Lock()
	defer c.groupsMu.Unlock()
	now := c.cfg.Now()
	if !c.groupsAt.IsZero() && now.Sub(c.groupsAt) < groupsFresh {
		return c.groupsLast, c.groupsErr
	}
	c.groupsLast, c.groupsErr = loadGroups(ctx, c.cfg.Groups, st, topics)
	c.groupsAt = now
	return c.groupsLast, c.groupsErr
}
