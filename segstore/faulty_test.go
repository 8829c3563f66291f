package segstore

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

func TestFaulty(t *testing.T) {
	ctx := context.Background()
	inner := NewMemory()
	f := NewFaulty(inner)
	boom := errors.New("injected")
	failKey := func(bad string) func(string) error {
		return func(key string) error {
			if key == bad {
				return boom
			}
			return nil
		}
	}

	// Before faults never reach the inner store.
	f.SetFault(OpPut, failKey("seg/bad"))
	if err := f.Put(ctx, "seg/bad", []byte("x")); !errors.Is(err, boom) {
		t.Fatalf("faulted Put = %v", err)
	}
	if _, err := inner.Get(ctx, "seg/bad"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed Put reached the inner store: %v", err)
	}
	mustPut(t, f, "seg/good", []byte("x"))

	// After faults do: the bytes land, the caller hears of a failure.
	f.SetFaultAfter(OpPut, failKey("seg/lost-ack"))
	if err := f.Put(ctx, "seg/lost-ack", []byte("y")); !errors.Is(err, boom) {
		t.Fatalf("Put with a lost answer = %v", err)
	}
	if got, err := inner.Get(ctx, "seg/lost-ack"); err != nil || string(got) != "y" {
		t.Fatalf("Put with a lost answer did not land: %q, %v", got, err)
	}

	// A streamed put is faulted apart from Put, and a fault before it reads nothing of the reader.
	f.SetFault(OpPutStream, failKey("seg/bad"))
	body := strings.NewReader("zz")
	if err := f.PutReader(ctx, "seg/bad", 2, body); !errors.Is(err, boom) || body.Len() != 2 {
		t.Fatalf("faulted PutReader = %v, %d bytes left to read; want the injected error and all 2", err, body.Len())
	}
	if err := f.PutReader(ctx, "seg/streamed", 2, strings.NewReader("zz")); err != nil {
		t.Fatalf("PutReader of another key = %v", err)
	}
	f.SetFault(OpPutStream, nil)

	for op, call := range map[string]func() error{
		OpPutStream:    func() error { return f.PutReader(ctx, "seg/good", 1, strings.NewReader("x")) },
		"list objects": func() error { _, err := f.ListObjects(ctx, "seg/good"); return err },
		OpGet:          func() error { _, err := f.Get(ctx, "seg/good"); return err },
		OpGetRange:     func() error { _, err := f.GetRange(ctx, "seg/good", 0, 1); return err },
		OpDelete:       func() error { return f.Delete(ctx, "seg/good") },
		OpList:         func() error { _, err := f.List(ctx, "seg/good"); return err },
		OpCheck:        func() error { return f.Check(ctx) },
	} {
		key, faultOp := "seg/good", op
		switch op {
		case OpCheck:
			key = ""
		case "list objects":
			faultOp = OpList
		}
		f.SetFault(faultOp, failKey(key))
		if err := call(); !errors.Is(err, boom) {
			t.Errorf("%s with a fault = %v, want the injected error", op, err)
		}
		f.SetFault(faultOp, nil)
		if op == OpPutStream {
			inner.Delete(ctx, "seg/good") // so that the put succeeds
		}
		if err := call(); err != nil {
			t.Errorf("%s after clearing its fault = %v", op, err)
		}
		if op == OpDelete {
			mustPut(t, inner, "seg/good", []byte("x"))
		}
	}

	f.SetFault(OpGet, failKey("seg/good"))
	f.SetFault("", nil) // clears everything, before and after
	if _, err := f.Get(ctx, "seg/good"); err != nil {
		t.Errorf("Get after clearing all faults = %v", err)
	}
	if err := f.Put(ctx, "seg/lost-ack2", nil); err != nil {
		t.Errorf("Put after clearing all faults = %v", err)
	}
}

func TestFaultyUnknownOpPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("SetFault with a misspelt op did not panic")
		}
	}()
	NewFaulty(NewMemory()).SetFault("gets", func(string) error { return nil })
}

// TestFaultyConcurrent toggles faults while requests run; the race detector checks the locking.
func TestFaultyConcurrent(t *testing.T) {
	ctx := context.Background()
	f := NewFaulty(NewMemory())
	boom := errors.New("injected")
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			if i%2 == 0 {
				f.SetFault(OpGet, func(string) error { return boom })
			} else {
				f.SetFault(OpGet, nil)
			}
		}
	})
	wg.Go(func() {
		for range 200 {
			if _, err := f.Get(ctx, "seg/none"); !errors.Is(err, boom) && !errors.Is(err, ErrNotFound) {
				t.Errorf("Get = %v", err)
				return
			}
		}
	})
	wg.Wait()
}
