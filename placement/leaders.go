package placement

import (
	"cmp"
	"slices"
)

// Agent is a live agent as placement sees it.
type Agent struct {
	ID    string
	Zone  string
	Group string
}

// Partition is one partition to place. Group, when set, restricts its leaders to that agent group.
type Partition struct {
	Topic     string
	Partition int32
	Group     string
}

// Leaders returns the desired leader (agent id) of every partition that has an eligible agent. It
// keeps current leaders where it can, so that membership changes move few partitions, and otherwise
// gives each partition to the eligible agent leading the fewest, preferring the zone with the fewest
// of the topic's leaders, then the smallest id. current maps partitions to their leaders now.
func Leaders(agents []Agent, parts []Partition, current map[Partition]string) map[Partition]string {
	agents = slices.Clone(agents)
	slices.SortFunc(agents, func(a, b Agent) int { return cmp.Compare(a.ID, b.ID) })
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b Partition) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})

	byGroup := map[string][]Agent{}
	for _, a := range agents {
		byGroup[a.Group] = append(byGroup[a.Group], a)
	}
	eligible := func(p Partition) []Agent {
		if p.Group == "" {
			return agents
		}
		return byGroup[p.Group]
	}
	counts := map[string]int{}
	zoneCounts := map[string]map[string]int{} // topic → zone → leaders
	zoneOf := map[string]string{}
	for _, a := range agents {
		zoneOf[a.ID] = a.Zone
	}
	out := make(map[Partition]string, len(parts))
	assign := func(p Partition, id string) {
		out[p] = id
		counts[id]++
		if zoneCounts[p.Topic] == nil {
			zoneCounts[p.Topic] = map[string]int{}
		}
		zoneCounts[p.Topic][zoneOf[id]]++
	}
	// An agent keeps a current partition only while it leads fewer than its fair share (the ceiling of
	// the partitions it could lead over the agents that could lead them), so stickiness never
	// leaves the cluster unbalanced.
	perGroup := map[string]int{}
	for _, p := range parts {
		perGroup[p.Group]++
	}
	limit := func(p Partition) int {
		n := len(eligible(p))
		return (perGroup[p.Group] + n - 1) / max(n, 1)
	}
	var rest []Partition
	for _, p := range parts {
		id, ok := current[p]
		if ok && slices.ContainsFunc(eligible(p), func(a Agent) bool { return a.ID == id }) && counts[id] < limit(p) {
			assign(p, id)
			continue
		}
		rest = append(rest, p)
	}
	for _, p := range rest {
		el := eligible(p)
		if len(el) == 0 {
			continue
		}
		best := el[0]
		for _, a := range el[1:] {
			if better(a, best, counts, zoneCounts[p.Topic]) {
				best = a
			}
		}
		assign(p, best.ID)
	}
	return out
}

func better(a, b Agent, counts map[string]int, zones map[string]int) bool {
	if counts[a.ID] != counts[b.ID] {
		return counts[a.ID] < counts[b.ID]
	}
	if zones[a.Zone] != zones[b.Zone] {
		return zones[a.Zone] < zones[b.Zone]
	}
	return a.ID < b.ID
}
