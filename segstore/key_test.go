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

// ObjectAgent reads back the agent of a key NewObjectKey made, ids with dashes too, and nothing
// from keys of another shape.
func TestObjectAgent(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"a1", "dev-3", "agent-x-y"} {
		if got, ok := ObjectAgent(NewObjectKey(id)); !ok || got != id {
			t.Errorf("ObjectAgent(NewObjectKey(%q)) = %q, %v", id, got, ok)
		}
	}
	u := newULID().String()
	for _, k := range []string{"", "seg/", "seg/" + u, "seg/" + u + "-", "seg/" + u + "x1", "seg/zzzzzzzzzzzzzzzzzzzzzzzzzz-a1",
		"obj/" + u + "-a1", "seg/" + u[:25] + "-a1", "seg/" + strings.ToLower(u) + "-a1"} {
		if got, ok := ObjectAgent(k); ok {
			t.Errorf("ObjectAgent(%q) = %q, want no agent", k, got)
		}
	}
}

// FuzzObjectAgent drives ObjectAgent, which reads object names agents send each other: no panic, and
// what it accepts is a key of NewObjectKey's shape whose tail is the id it returns.
func FuzzObjectAgent(f *testing.F) {
	f.Add(NewObjectKey("a1"))
	f.Add("seg/")
	f.Add("seg/01J0000000000000000000000-")
	f.Add("seg/00000000000000000000a00000-0") // lower case: a ULID, but not as NewObjectKey writes it
	f.Fuzz(func(t *testing.T, key string) {
		id, ok := ObjectAgent(key)
		if !ok {
			return
		}
		u, err := ulid.ParseStrict(key[len(objectPrefix) : len(objectPrefix)+ulid.EncodedSize])
		if err != nil || id == "" || key != objectPrefix+u.String()+"-"+id {
			t.Fatalf("ObjectAgent(%q) = %q for a key that is not seg/<ULID>-<id>", key, id)
		}
	})
}
