package segstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// testStoreContract is the behaviour every Store implementation must share. newStore returns a
// fresh, empty store.
func testStoreContract(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()

	t.Run("put get", func(t *testing.T) {
		s := newStore(t)
		data := []byte("segment bytes")
		mustPut(t, s, "seg/a", data)
		data[0] = 'X' // Put must not keep the caller's buffer
		got, err := s.Get(ctx, "seg/a")
		if err != nil || string(got) != "segment bytes" {
			t.Fatalf("Get = %q, %v; want %q", got, err, "segment bytes")
		}
		got[0] = 'Y' // nor hand out its own
		if again, _ := s.Get(ctx, "seg/a"); string(again) != "segment bytes" {
			t.Fatalf("Get after modifying an earlier result = %q", again)
		}
	})

	t.Run("put parts", func(t *testing.T) {
		s := newStore(t)
		head, body := []byte("head|"), []byte("batch one|batch two")
		if err := s.Put(ctx, "seg/parts", head, nil, body[:10], body[10:]); err != nil {
			t.Fatal(err)
		}
		head[0], body[0] = 'X', 'X' // Put keeps none of the parts
		if got, err := s.Get(ctx, "seg/parts"); err != nil || string(got) != "head|batch one|batch two" {
			t.Fatalf("Get = %q, %v; want the parts in order", got, err)
		}
		if got, err := s.GetRange(ctx, "seg/parts", 3, 10); err != nil || string(got) != "d|batch on" {
			t.Fatalf("GetRange across parts = %q, %v", got, err)
		}
		if err := s.Put(ctx, "seg/no-parts"); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "seg/no-parts"); err != nil || len(got) != 0 {
			t.Fatalf("Get of an object put without parts = %q, %v; want empty", got, err)
		}
	})

	t.Run("empty object", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "seg/empty", nil)
		if got, err := s.Get(ctx, "seg/empty"); err != nil || len(got) != 0 {
			t.Fatalf("Get = %q, %v; want empty", got, err)
		}
		if _, err := s.GetRange(ctx, "seg/empty", 0, 1); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("GetRange past the end of an empty object = %v, want ErrCorrupt", err)
		}
	})

	t.Run("range", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "seg/r", []byte("0123456789"))
		for _, tc := range []struct {
			off, length int64
			want        string
		}{{0, 1, "0"}, {0, 10, "0123456789"}, {3, 4, "3456"}, {9, 1, "9"}} {
			got, err := s.GetRange(ctx, "seg/r", tc.off, tc.length)
			if err != nil || string(got) != tc.want {
				t.Errorf("GetRange(%d, %d) = %q, %v; want %q", tc.off, tc.length, got, err, tc.want)
			}
		}
		for _, r := range [][2]int64{{0, 11}, {9, 2}, {10, 1}, {100, 5}} {
			if got, err := s.GetRange(ctx, "seg/r", r[0], r[1]); !errors.Is(err, ErrCorrupt) {
				t.Errorf("GetRange(%d, %d) past the end = %q, %v; want ErrCorrupt", r[0], r[1], got, err)
			}
		}
		for _, r := range [][2]int64{{-1, 2}, {0, 0}, {0, -1}} {
			if _, err := s.GetRange(ctx, "seg/r", r[0], r[1]); err == nil || errors.Is(err, ErrNotFound) {
				t.Errorf("GetRange(%d, %d) = %v, want an invalid-range error", r[0], r[1], err)
			}
		}
	})

	t.Run("exists no overwrite", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "seg/x", []byte("first"))
		if err := s.Put(ctx, "seg/x", []byte("second")); !errors.Is(err, ErrExists) {
			t.Fatalf("second Put = %v, want ErrExists", err)
		}
		if err := s.Put(ctx, "seg/x", []byte("first")); !errors.Is(err, ErrExists) {
			t.Fatalf("second Put of the same bytes = %v, want ErrExists", err)
		}
		if got, _ := s.Get(ctx, "seg/x"); string(got) != "first" {
			t.Fatalf("after a refused Put, Get = %q, want %q", got, "first")
		}
	})

	t.Run("not found", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Get(ctx, "seg/missing"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get = %v, want ErrNotFound", err)
		}
		if _, err := s.GetRange(ctx, "seg/missing", 0, 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("GetRange = %v, want ErrNotFound", err)
		}
		mustPut(t, s, "seg/dir/obj", []byte("x"))
		if _, err := s.Get(ctx, "seg/dir"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get of a key's prefix = %v, want ErrNotFound", err)
		}
	})

	t.Run("delete", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "seg/d", []byte("x"))
		if err := s.Delete(ctx, "seg/d"); err != nil {
			t.Fatalf("Delete = %v", err)
		}
		if _, err := s.Get(ctx, "seg/d"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "seg/d"); err != nil {
			t.Fatalf("Delete of an absent key = %v, want nil", err)
		}
		if err := s.Delete(ctx, "seg/never"); err != nil {
			t.Fatalf("Delete of a never-written key = %v, want nil", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"seg/c", "seg/a", "seg/b/1", "segx", "other/z"} {
			mustPut(t, s, k, []byte(k))
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"seg/", []string{"seg/a", "seg/b/1", "seg/c"}},
			{"seg", []string{"seg/a", "seg/b/1", "seg/c", "segx"}},
			{"", []string{"other/z", "seg/a", "seg/b/1", "seg/c", "segx"}},
			{"seg/b", []string{"seg/b/1"}},
			{"seg/a", []string{"seg/a"}},
			{"nothing/", nil},
			{"../", nil},
		} {
			got, err := s.List(ctx, tc.prefix)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("List(%q) = %q, %v; want %q", tc.prefix, got, err, tc.want)
			}
		}
	})

	t.Run("put reader", func(t *testing.T) { testPutReader(t, newStore(t)) })
	t.Run("put reader refused", func(t *testing.T) { testPutReaderRefused(t, newStore(t)) })

	t.Run("list objects", func(t *testing.T) {
		s := newStore(t)
		for k, n := range map[string]int{"seg/c": 3, "seg/a": 0, "seg/b/1": 10, "segx": 1, "other/z": 5} {
			mustPut(t, s, k, bytes.Repeat([]byte{'x'}, n))
		}
		for _, tc := range []struct {
			prefix string
			want   []ObjectInfo
		}{
			{"seg/", []ObjectInfo{{"seg/a", 0}, {"seg/b/1", 10}, {"seg/c", 3}}},
			{"seg", []ObjectInfo{{"seg/a", 0}, {"seg/b/1", 10}, {"seg/c", 3}, {"segx", 1}}},
			{"", []ObjectInfo{{"other/z", 5}, {"seg/a", 0}, {"seg/b/1", 10}, {"seg/c", 3}, {"segx", 1}}},
			{"seg/b", []ObjectInfo{{"seg/b/1", 10}}},
			{"nothing/", nil},
			{"../", nil},
		} {
			got, err := s.ListObjects(ctx, tc.prefix)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("ListObjects(%q) = %v, %v; want %v", tc.prefix, got, err, tc.want)
			}
		}
	})

	t.Run("check", func(t *testing.T) {
		if err := newStore(t).Check(ctx); err != nil {
			t.Fatalf("Check = %v", err)
		}
	})

	t.Run("invalid keys", func(t *testing.T) {
		s := newStore(t)
		for _, k := range []string{"", "/abs", "a//b", "a/", "../up", "seg/./x", ".tmp/x", "a\\b"} {
			if err := s.Put(ctx, k, []byte("x")); err == nil || errors.Is(err, ErrExists) {
				t.Errorf("Put(%q) = %v, want an invalid-key error", k, err)
			}
		}
		if keys, _ := s.List(ctx, ""); len(keys) != 0 {
			t.Errorf("invalid keys were stored: %q", keys)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, "seg/c", []byte("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("Put = %v, want context.Canceled", err)
		}
		if _, err := s.Get(cctx, "seg/c"); !errors.Is(err, context.Canceled) {
			t.Errorf("Get = %v, want context.Canceled", err)
		}
		if err := s.PutReader(cctx, "seg/c", 1, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("PutReader = %v, want context.Canceled", err)
		}
	})

	t.Run("concurrent puts", func(t *testing.T) {
		s := newStore(t)
		const writers, each = 8, 4
		var wg sync.WaitGroup
		errs := make(chan error, writers*each)
		for w := range writers {
			wg.Go(func() {
				for i := range each {
					key := fmt.Sprintf("seg/w%d-%d", w, i)
					if err := s.Put(ctx, key, []byte(key)); err != nil {
						errs <- err
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("Put: %v", err)
		}
		keys, err := s.List(ctx, "seg/")
		if err != nil || len(keys) != writers*each {
			t.Fatalf("List = %d keys, %v; want %d", len(keys), err, writers*each)
		}
		for _, k := range keys {
			if got, err := s.Get(ctx, k); err != nil || string(got) != k {
				t.Errorf("Get(%q) = %q, %v", k, got, err)
			}
		}
	})

	t.Run("concurrent puts of one key", func(t *testing.T) {
		s := newStore(t)
		const writers = 8
		var wg sync.WaitGroup
		won := make(chan int, writers)
		for w := range writers {
			wg.Go(func() {
				err := s.Put(ctx, "seg/contended", []byte{byte(w)})
				switch {
				case err == nil:
					won <- w
				case !errors.Is(err, ErrExists):
					t.Errorf("Put by writer %d = %v, want nil or ErrExists", w, err)
				}
			})
		}
		wg.Wait()
		close(won)
		winners := slices.Collect(chanValues(won))
		if len(winners) != 1 {
			t.Fatalf("%d writers' Puts succeeded, want exactly 1", len(winners))
		}
		if got, _ := s.Get(ctx, "seg/contended"); !bytes.Equal(got, []byte{byte(winners[0])}) {
			t.Fatalf("stored %v, but writer %d won", got, winners[0])
		}
	})
}

func chanValues[T any](c <-chan T) func(func(T) bool) {
	return func(yield func(T) bool) {
		for v := range c {
			if !yield(v) {
				return
			}
		}
	}
}

func mustPut(t testing.TB, s Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, data); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func TestMemoryContract(t *testing.T) {
	testStoreContract(t, func(t *testing.T) Store { return NewMemory() })
}

func TestDiskContract(t *testing.T) {
	testStoreContract(t, func(t *testing.T) Store { return newDisk(t, t.TempDir()) })
}

func newDisk(t *testing.T, dir string) *Disk {
	t.Helper()
	d, err := NewDisk(dir)
	if err != nil {
		t.Fatalf("NewDisk: %v", err)
	}
	return d
}

func TestDiskLayoutAndReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	mustPut(t, newDisk(t, dir), "seg/k", []byte("v"))
	if b, err := os.ReadFile(filepath.Join(dir, "seg", "k")); err != nil || string(b) != "v" {
		t.Fatalf("file for key seg/k = %q, %v", b, err)
	}
	// A leftover temporary file (crash mid-Put) is invisible.
	if err := os.WriteFile(filepath.Join(dir, ".tmp", "put-leftover"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newDisk(t, dir)
	if got, err := d.Get(ctx, "seg/k"); err != nil || string(got) != "v" {
		t.Fatalf("Get after reopen = %q, %v", got, err)
	}
	if keys, err := d.List(ctx, ""); err != nil || !slices.Equal(keys, []string{"seg/k"}) {
		t.Fatalf("List = %q, %v; want only seg/k", keys, err)
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, ".tmp")); len(tmp) != 1 {
		t.Fatalf("Put left %d files in .tmp, want only the planted one", len(tmp))
	}
}

func TestDiskCheckFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	d := newDisk(t, dir)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := d.Check(context.Background())
	if err == nil {
		t.Fatal("Check on a removed directory succeeded")
	}
	t.Log(err)
}

func TestNewDiskNoDir(t *testing.T) {
	if _, err := NewDisk(""); err == nil {
		t.Fatal("NewDisk(\"\") succeeded")
	}
}
