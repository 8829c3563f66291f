package placement

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// cluster is a random input for the property tests.
type cluster struct {
	agents []Agent
	parts  []Partition
}

func randomCluster(r *rand.Rand, groups []string) cluster {
	var c cluster
	zones := 1 + r.IntN(3)
	for i := range 1 + r.IntN(9) {
		c.agents = append(c.agents, Agent{ID: fmt.Sprintf("agent-%02d", i), Zone: fmt.Sprintf("z%d", i%zones), Group: groups[r.IntN(len(groups))]})
	}
	for t := range 1 + r.IntN(5) {
		group := ""
		if len(groups) > 1 && r.IntN(2) == 0 {
			group = groups[r.IntN(len(groups))]
		}
		for p := range 1 + r.IntN(40) {
			c.parts = append(c.parts, Partition{Topic: fmt.Sprintf("t%d", t), Partition: int32(p), Group: group})
		}
	}
	return c
}

func eligibleFor(agents []Agent, p Partition) []Agent {
	var out []Agent
	for _, a := range agents {
		if p.Group == "" || a.Group == p.Group {
			out = append(out, a)
		}
	}
	return out
}

// With a single agent group, every agent leads ⌊P/N⌋ or ⌈P/N⌉ partitions, from any starting point.
func TestPropertyBalanced(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		c := randomCluster(r, []string{"g"})
		current := randomCurrent(r, c)
		got := Leaders(c.agents, c.parts, current)
		if len(got) != len(c.parts) {
			t.Fatalf("%d of %d partitions placed", len(got), len(c.parts))
		}
		counts := map[string]int{}
		for _, id := range got {
			counts[id]++
		}
		lo, hi := len(c.parts)/len(c.agents), (len(c.parts)+len(c.agents)-1)/len(c.agents)
		for _, a := range c.agents {
			if n := counts[a.ID]; n < lo || n > hi {
				t.Fatalf("%d agents, %d partitions: %s leads %d, want %d..%d", len(c.agents), len(c.parts), a.ID, n, lo, hi)
			}
		}
	}
}

// A partition bound to a group is led only by an agent of that group, and by none when the group has no
// agent.
func TestPropertyGroupsRespected(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		c := randomCluster(r, []string{"a", "b", "c"})
		got := Leaders(c.agents, c.parts, randomCurrent(r, c))
		byID := map[string]Agent{}
		for _, a := range c.agents {
			byID[a.ID] = a
		}
		for _, p := range c.parts {
			id, ok := got[p]
			if !ok {
				if len(eligibleFor(c.agents, p)) > 0 {
					t.Fatalf("partition %v unplaced though its group has agents", p)
				}
				continue
			}
			if p.Group != "" && byID[id].Group != p.Group {
				t.Fatalf("partition %v of group %q led by %s of group %q", p, p.Group, id, byID[id].Group)
			}
		}
	}
}

// Placed from scratch, a topic's leaders spread over zones as evenly as the zones' agents allow: with the
// same number of agents in every zone, zone counts differ by at most one.
func TestPropertyZoneSpread(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 300 {
		zones, perZone := 1+r.IntN(3), 1+r.IntN(3)
		var agents []Agent
		for z := range zones {
			for i := range perZone {
				agents = append(agents, Agent{ID: fmt.Sprintf("a%d-%d", z, i), Zone: fmt.Sprintf("z%d", z)})
			}
		}
		var parts []Partition
		for p := range 1 + r.IntN(60) {
			parts = append(parts, Partition{Topic: "t", Partition: int32(p)})
		}
		got := Leaders(agents, parts, nil)
		zoneOf := map[string]string{}
		for _, a := range agents {
			zoneOf[a.ID] = a.Zone
		}
		counts := map[string]int{}
		for _, id := range got {
			counts[zoneOf[id]]++
		}
		lo, hi := len(parts), 0
		for z := range zones {
			n := counts[fmt.Sprintf("z%d", z)]
			lo, hi = min(lo, n), max(hi, n)
		}
		if hi-lo > 1 {
			t.Fatalf("%d zones × %d agents, %d partitions: zone counts %v", zones, perZone, len(parts), counts)
		}
	}
}

// When an agent leaves, only its partitions move; when one joins, only as many move as it needs to reach
// its fair share.
func TestPropertyMinimalMovement(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 500 {
		c := randomCluster(r, []string{"g"})
		before := Leaders(c.agents, c.parts, nil)

		if len(c.agents) > 1 {
			gone := c.agents[r.IntN(len(c.agents))]
			var rest []Agent
			for _, a := range c.agents {
				if a.ID != gone.ID {
					rest = append(rest, a)
				}
			}
			after := Leaders(rest, c.parts, before)
			for p, id := range before {
				if id != gone.ID && after[p] != id {
					t.Fatalf("agent %s left, yet %v moved from %s to %s", gone.ID, p, id, after[p])
				}
			}
		}

		joined := append(append([]Agent(nil), c.agents...), Agent{ID: "new", Zone: "z0", Group: "g"})
		after := Leaders(joined, c.parts, before)
		moved := 0
		for p, id := range before {
			if after[p] != id {
				moved++
				if after[p] != "new" {
					t.Fatalf("agent joined, yet %v moved between old agents %s → %s", p, id, after[p])
				}
			}
		}
		if limit := (len(c.parts) + len(joined) - 1) / len(joined); moved > limit {
			t.Fatalf("agent joined: %d partitions moved, fair share is %d", moved, limit)
		}
	}
}

// Placement is a pure function: the same input gives the same output whatever the input order.
func TestPropertyDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 200 {
		c := randomCluster(r, []string{"a", "b"})
		current := randomCurrent(r, c)
		want := Leaders(c.agents, c.parts, current)
		r.Shuffle(len(c.agents), func(i, j int) { c.agents[i], c.agents[j] = c.agents[j], c.agents[i] })
		r.Shuffle(len(c.parts), func(i, j int) { c.parts[i], c.parts[j] = c.parts[j], c.parts[i] })
		got := Leaders(c.agents, c.parts, current)
		for p, id := range want {
			if got[p] != id {
				t.Fatalf("%v: %s then %s for the same input", p, id, got[p])
			}
		}
	}
}

// randomCurrent is a random, possibly unbalanced, possibly stale current assignment.
func randomCurrent(r *rand.Rand, c cluster) map[Partition]string {
	cur := map[Partition]string{}
	for _, p := range c.parts {
		switch r.IntN(3) {
		case 0:
		case 1:
			cur[p] = c.agents[r.IntN(len(c.agents))].ID
		default:
			cur[p] = "departed"
		}
	}
	return cur
}
