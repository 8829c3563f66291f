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

// Leaders returns the desired leader (agent id) of every partition that has an eligible agent: an agent
// of the partition's group, or any agent for a partition without one. current maps partitions to their
// leaders now.
//
// Partitions are placed per group (the unbound ones over every agent), so that within each, every
// eligible agent leads ⌊P/N⌋ or ⌈P/N⌉ of them. Current leaders are kept as far as that balance allows,
// so that an agent joining or leaving moves few partitions; the rest go to the least loaded agent,
// preferring the zone that leads the fewest of the topic's partitions, then the smallest id.
func Leaders(agents []Agent, parts []Partition, current map[Partition]string) map[Partition]string {
	agents = slices.Clone(agents)
	slices.SortFunc(agents, func(a, b Agent) int { return cmp.Compare(a.ID, b.ID) })
	parts = slices.Clone(parts)
	slices.SortFunc(parts, func(a, b Partition) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
	})
	p := &placer{out: make(map[Partition]string, len(parts)), zoneCounts: map[string]map[string]int{}}
	for i := 0; i < len(parts); {
		j := i
		for j < len(parts) && parts[j].Group == parts[i].Group {
			j++
		}
		var eligible []Agent
		for _, a := range agents {
			if parts[i].Group == "" || a.Group == parts[i].Group {
				eligible = append(eligible, a)
			}
		}
		if len(eligible) > 0 {
			p.place(eligible, parts[i:j], current)
		}
		i = j
	}
	return p.out
}

type placer struct {
	out        map[Partition]string
	zoneCounts map[string]map[string]int // topic → zone → leaders, across groups
}

// place balances one group's partitions over its eligible agents.
func (p *placer) place(agents []Agent, parts []Partition, current map[Partition]string) {
	n := len(agents)
	lo := len(parts) / n
	hiSlots := len(parts) - lo*n // agents that may lead lo+1
	counts := make(map[string]int, n)
	byID := make(map[string]Agent, n)
	for _, a := range agents {
		byID[a.ID] = a
	}
	assign := func(part Partition, a Agent) {
		p.out[part] = a.ID
		counts[a.ID]++
		if p.zoneCounts[part.Topic] == nil {
			p.zoneCounts[part.Topic] = map[string]int{}
		}
		p.zoneCounts[part.Topic][a.Zone]++
	}
	// Keep current leaders: first up to ⌊P/N⌋ each, then the few extra that balance allows.
	done := make([]bool, len(parts))
	for round := range 2 {
		for i, part := range parts {
			a, ok := byID[current[part]]
			if done[i] || !ok {
				continue
			}
			switch c := counts[a.ID]; {
			case c < lo:
			case round == 1 && c == lo && hiSlots > 0:
				hiSlots--
			default:
				continue
			}
			assign(part, a)
			done[i] = true
		}
	}
	for i, part := range parts {
		if done[i] {
			continue
		}
		var best Agent
		found := false
		for _, a := range agents {
			c := counts[a.ID]
			if c > lo || (c == lo && hiSlots == 0) {
				continue
			}
			if !found || p.better(part.Topic, a, best, counts) {
				best, found = a, true
			}
		}
		if counts[best.ID] == lo {
			hiSlots--
		}
		assign(part, best)
	}
}

// better reports whether a should take the next partition of topic before b.
func (p *placer) better(topic string, a, b Agent, counts map[string]int) bool {
	if counts[a.ID] != counts[b.ID] {
		return counts[a.ID] < counts[b.ID]
	}
	if za, zb := p.zoneCounts[topic][a.Zone], p.zoneCounts[topic][b.Zone]; za != zb {
		return za < zb
	}
	return a.ID < b.ID
}
