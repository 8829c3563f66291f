package segstore

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
)

// Faulty wraps a Store and fails chosen operations, for tests and the chaos suite.
//
// SetFault fails an operation before it reaches the inner store (a failed Put stores nothing);
// SetFaultAfter fails it after the inner store has done it (a Put whose bytes land but whose answer
// is lost, the case that leaves garbage objects and tests "acknowledged means durable").
type Faulty struct {
	s Store

	mu     sync.RWMutex
	before map[string]func(key string) error
	after  map[string]func(key string) error
}

var _ Store = (*Faulty)(nil)

// NewFaulty wraps s with no faults set.
func NewFaulty(s Store) *Faulty {
	return &Faulty{
		s:      s,
		before: make(map[string]func(string) error),
		after:  make(map[string]func(string) error),
	}
}

// SetFault makes op ("put", "put_stream", "get", "get_range", "delete", "list", "check"; see the Op
// constants; "list" covers List and ListObjects) call fn first with the key (the prefix for list,
// "" for check); when fn returns non-nil, op fails
// with that error without reaching the inner store. A nil fn clears op's fault; op "" clears all
// faults, before and after. fn may be called concurrently.
//
// An unknown op panics: a misspelt op would otherwise leave a chaos test silently fault-free.
func (f *Faulty) SetFault(op string, fn func(key string) error) {
	f.set(f.before, op, fn)
}

// SetFaultAfter is SetFault, except that op reaches the inner store first and fn is called only if
// it succeeded; a non-nil result replaces the success.
func (f *Faulty) SetFaultAfter(op string, fn func(key string) error) {
	f.set(f.after, op, fn)
}

func (f *Faulty) set(faults map[string]func(string) error, op string, fn func(string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case op == "":
		clear(f.before)
		clear(f.after)
	case !slices.Contains(allOps, op):
		panic(fmt.Sprintf("segstore: Faulty: unknown op %q", op))
	case fn == nil:
		delete(faults, op)
	default:
		faults[op] = fn
	}
}

// do runs inner for op between the before and after faults.
func (f *Faulty) do(op, key string, inner func() error) error {
	f.mu.RLock()
	before, after := f.before[op], f.after[op]
	f.mu.RUnlock()
	if before != nil {
		if err := before(key); err != nil {
			return err
		}
	}
	if err := inner(); err != nil {
		return err
	}
	if after != nil {
		return after(key)
	}
	return nil
}

// Put implements Writer.
func (f *Faulty) Put(ctx context.Context, key string, data ...[]byte) error {
	return f.do(OpPut, key, func() error { return f.s.Put(ctx, key, data...) })
}

// PutReader implements Writer. A fault before it reads nothing of r.
func (f *Faulty) PutReader(ctx context.Context, key string, size int64, r io.Reader) error {
	return f.do(OpPutStream, key, func() error { return f.s.PutReader(ctx, key, size, r) })
}

// Get implements Reader.
func (f *Faulty) Get(ctx context.Context, key string) (b []byte, err error) {
	err = f.do(OpGet, key, func() error { b, err = f.s.Get(ctx, key); return err })
	if err != nil {
		return nil, err
	}
	return b, nil
}

// GetRange implements Reader.
func (f *Faulty) GetRange(ctx context.Context, key string, off, length int64) (b []byte, err error) {
	err = f.do(OpGetRange, key, func() error { b, err = f.s.GetRange(ctx, key, off, length); return err })
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Delete implements Store.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	return f.do(OpDelete, key, func() error { return f.s.Delete(ctx, key) })
}

// List implements Store.
func (f *Faulty) List(ctx context.Context, prefix string) (keys []string, err error) {
	err = f.do(OpList, prefix, func() error { keys, err = f.s.List(ctx, prefix); return err })
	if err != nil {
		return nil, err
	}
	return keys, nil
}

// ListObjects implements Store.
func (f *Faulty) ListObjects(ctx context.Context, prefix string) (objects []ObjectInfo, err error) {
	err = f.do(OpList, prefix, func() error { objects, err = f.s.ListObjects(ctx, prefix); return err })
	if err != nil {
		return nil, err
	}
	return objects, nil
}

// Check implements Store.
func (f *Faulty) Check(ctx context.Context) error {
	return f.do(OpCheck, "", func() error { return f.s.Check(ctx) })
}
