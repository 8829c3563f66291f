package placement

import (
	"fmt"
	"testing"
)

func TestLeadersBalancedAndSticky(t *testing.T) {
	agents := []Agent{{ID: "a", Zone: "z1"}, {ID: "b", Zone: "z2"}, {ID: "c", Zone: "z3"}}
	var parts []Partition
	for i := range int32(10) {
		parts = append(parts, Partition{Topic: "t", Partition: i})
	}
	got := Leaders(agents, parts, nil)
	counts := map[string]int{}
	for _, id := range got {
		counts[id]++
	}
	for _, a := range agents {
		if n := counts[a.ID]; n < 3 || n > 4 {
			t.Fatalf("agent %s leads %d of 10 partitions, want 3 or 4: %v", a.ID, n, counts)
		}
	}
	// Removing an agent moves only its partitions.
	after := Leaders(agents[:2], parts, got)
	moved := 0
	for p, id := range got {
		if after[p] != id {
			moved++
			if id != "c" {
				t.Fatalf("partition %v moved from surviving agent %s", p, id)
			}
		}
	}
	if moved != counts["c"] {
		t.Fatalf("moved %d partitions, want %d", moved, counts["c"])
	}
}

func TestLeadersRespectGroups(t *testing.T) {
	agents := []Agent{{ID: "a", Group: "g1"}, {ID: "b", Group: "g2"}}
	parts := []Partition{{Topic: "x", Partition: 0, Group: "g2"}, {Topic: "y", Partition: 0, Group: "g3"}}
	got := Leaders(agents, parts, nil)
	if got[parts[0]] != "b" {
		t.Fatalf("bound partition led by %q, want b", got[parts[0]])
	}
	if id, ok := got[parts[1]]; ok {
		t.Fatalf("partition of a group with no agents got leader %q", id)
	}
}

func TestLeadersSingleAgent(t *testing.T) {
	var parts []Partition
	for i := range int32(5) {
		parts = append(parts, Partition{Topic: fmt.Sprint("t", i), Partition: 0})
	}
	got := Leaders([]Agent{{ID: "only"}}, parts, nil)
	if len(got) != 5 {
		t.Fatalf("got %d leaders, want 5", len(got))
	}
}
