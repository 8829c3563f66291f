package segstore

import (
	"strings"
	"sync"
	"testing"

	"github.com/oklog/ulid/v2"
)

func TestNewObjectKey(t *testing.T) {
	const goroutines, each = 4, 500
	keys := make([][]string, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for range each {
				keys[g] = append(keys[g], NewObjectKey("agent-1"))
			}
		})
	}
	wg.Wait()
	seen := make(map[string]bool)
	for g, ks := range keys {
		for i, k := range ks {
			rest, ok := strings.CutPrefix(k, "seg/")
			id, agent, ok2 := strings.Cut(rest, "-")
			if !ok || !ok2 || agent != "agent-1" || validateKey(k) != nil {
				t.Fatalf("key %q is not seg/<ULID>-agent-1", k)
			}
			if _, err := ulid.ParseStrict(id); err != nil {
				t.Fatalf("key %q: %v", k, err)
			}
			if seen[k] {
				t.Fatalf("key %q made twice", k)
			}
			seen[k] = true
			// Within one goroutine, keys sort in creation order.
			if i > 0 && k <= ks[i-1] {
				t.Fatalf("goroutine %d: key %q after %q", g, k, ks[i-1])
			}
		}
	}
}
