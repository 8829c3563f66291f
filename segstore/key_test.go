package segstore

import (
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

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

func TestNewPartKey(t *testing.T) {
	t.Parallel()
	topic := [16]byte{0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 0xff}
	prev := ""
	for p := range int32(3) {
		k := NewPartKey(topic, p*1000, "agent-7")
		prefix := "part/ab0102030405060708090a0b0c0d0eff/" + strconv.Itoa(int(p*1000)) + "/"
		rest, ok := strings.CutPrefix(k, prefix)
		id, agent, ok2 := strings.Cut(rest, "-")
		if !ok || !ok2 || agent != "agent-7" || validateKey(k) != nil {
			t.Fatalf("key %q is not %s<ULID>-agent-7", k, prefix)
		}
		if _, err := ulid.ParseStrict(id); err != nil {
			t.Fatalf("key %q: %v", k, err)
		}
		if id <= prev {
			t.Fatalf("ULID %s after %s", id, prev)
		}
		prev = id
	}
}

func TestObjectTime(t *testing.T) {
	t.Parallel()
	before := time.Now().Truncate(time.Millisecond)
	seg, part := NewObjectKey("a-1"), NewPartKey([16]byte{1}, 12, "a-1")
	after := time.Now()
	for _, k := range []string{seg, part, NewPartKey([16]byte{}, 0, "a/b")} {
		ts, ok := ObjectTime(k)
		if !ok || ts.Before(before) || ts.After(after) {
			t.Errorf("ObjectTime(%q) = %v, %v; want a time in [%v, %v]", k, ts, ok, before, after)
		}
	}
	id := ulid.MustNew(ulid.Timestamp(time.UnixMilli(1_700_000_000_123)), strings.NewReader(strings.Repeat("x", 16))).String()
	want := time.UnixMilli(1_700_000_000_123)
	topic := "000102030405060708090a0b0c0d0e0f"
	for key, ok := range map[string]bool{
		"seg/" + id + "-agent":                               true,
		"seg/" + id + "-":                                    true,
		"part/" + topic + "/0/" + id + "-agent":              true,
		"part/" + topic + "/-3/" + id + "-a":                 true, // NewPartKey spells any int32
		"seg/" + id:                                          false,
		"seg/" + id + "_agent":                               false,
		"seg/" + strings.ToLower(id)[:25] + "-agent":         false,
		"seg/x" + id + "-agent":                              false,
		"part/" + topic + "/0/" + id:                         false,
		"part/" + topic + "/00/" + id + "-a":                 false,
		"part/" + topic + "/+1/" + id + "-a":                 false,
		"part/" + topic + "/4294967296/" + id + "-a":         false,
		"part/" + topic + "/x/" + id + "-a":                  false,
		"part/" + strings.ToUpper(topic) + "/0/" + id + "-a": false,
		"part/" + topic[:30] + "/0/" + id + "-a":             false,
		"part/" + topic + "zz/0/" + id + "-a":                false,
		"part/" + topic + "/0/x/" + id + "-a":                false,
		"commits/" + id:                                      false,
		"seg/8ZZZZZZZZZZZZZZZZZZZZZZZZZ-a":                   false, // past the ULID's 48-bit time
		"":                                                   false,
	} {
		ts, got := ObjectTime(key)
		if got != ok || (ok && !ts.Equal(want)) {
			t.Errorf("ObjectTime(%q) = %v, %v; want %v", key, ts, got, ok)
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

// FuzzObjectTime: ObjectTime reads keys listed from the bucket; it never panics, and accepts only
// keys of the two shapes the key makers spell.
func FuzzObjectTime(f *testing.F) {
	f.Add(NewObjectKey("agent"))
	f.Add(NewPartKey([16]byte{9}, 4, "agent"))
	f.Add("part/000102030405060708090a0b0c0d0e0f/-0/01ARZ3NDEKTSV4RRFFQ69G5FAV-a")
	f.Fuzz(func(t *testing.T, key string) {
		if _, ok := ObjectTime(key); ok && !strings.HasPrefix(key, "seg/") && !strings.HasPrefix(key, "part/") {
			t.Fatalf("ObjectTime accepted %q", key)
		}
	})
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
