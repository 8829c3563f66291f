package coord

import (
	"slices"
	"strings"
)

// Status is the cluster as the watched view holds it: the agents and every partition's leader, epoch,
// log start, high watermark, bytes, segments and objects, all at the view's one revision (Revision).
// Unlike Client.Status it reads nothing from etcd, so it costs no request, and agents' TTLSeconds are
// 0 (etcd keeps lease times outside the key space). Its cost is one pass over the view's index.
func (k *Cache) Status() ClusterStatus {
	k.mu.RLock()
	defer k.mu.RUnlock()
	parts := statusPartitions(k.st)
	led := map[string]int{}
	for _, p := range parts {
		if p.Leader != nil {
			led[*p.Leader]++
		}
	}
	agents := make([]AgentStatus, 0, len(k.st.agents))
	for id, a := range k.st.agents {
		agents = append(agents, AgentStatus{ID: id, AZ: a.AZ, Group: a.Group, Addr: a.Addr, PartitionsLed: led[id]})
	}
	slices.SortFunc(agents, func(a, b AgentStatus) int { return strings.Compare(a.ID, b.ID) })
	return ClusterStatus{Agents: agents, Partitions: parts}
}
