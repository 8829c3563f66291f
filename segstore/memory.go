package segstore

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
)

// Memory is an in-memory Store for tests and single-process tools. It copies on the way in and out,
// so neither side can change what the other sees.
type Memory struct {
	mu      sync.RWMutex
	objects map[string][]byte
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{objects: make(map[string][]byte)}
}

// Put implements Writer.
func (m *Memory) Put(ctx context.Context, key string, data ...[]byte) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return m.store(OpPut, key, parts(data).concat())
}

// PutReader implements Writer. Memory holds the object, of course, but not twice.
func (m *Memory) PutReader(ctx context.Context, key string, size int64, r io.Reader) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := validateSize(key, size); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	obj, err := readExact(newExactReader(ctx, r, size))
	if err != nil {
		return fmt.Errorf("memory: put_stream %q: %w", key, err)
	}
	return m.store(OpPutStream, key, obj)
}

// readExact reads e's object into a buffer of its size, allocated at once up to 64 MiB, and beyond
// that grown as bytes arrive: a large size that the reader does not back is never allocated.
func readExact(e *exactReader) ([]byte, error) {
	buf := make([]byte, 0, min(e.size, 64<<20))
	for {
		if len(buf) == cap(buf) && int64(len(buf)) < e.size {
			buf = slices.Grow(buf, int(min(e.size-int64(len(buf)), int64(len(buf)))))
		}
		n, err := e.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		} else if err != nil {
			return nil, err
		}
	}
}

// store adds obj under key unless key exists.
func (m *Memory) store(op, key string, obj []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; ok {
		return fmt.Errorf("memory: %s %q: %w", op, key, ErrExists)
	}
	m.objects[key] = obj
	return nil
}

// Get implements Reader.
func (m *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := m.lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	return slices.Clone(obj), nil
}

// GetRange implements Reader.
func (m *Memory) GetRange(ctx context.Context, key string, off, length int64) ([]byte, error) {
	if err := validateRange(key, off, length); err != nil {
		return nil, err
	}
	obj, err := m.lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	if off+length > int64(len(obj)) {
		return nil, shortObject(key, off, length, int64(len(obj)))
	}
	return slices.Clone(obj[off : off+length]), nil
}

// lookup returns the stored slice, which is never modified after Put, so it may be read unlocked.
func (m *Memory) lookup(ctx context.Context, key string) ([]byte, error) {
	if err := validateKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	obj, ok := m.objects[key]
	m.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("memory: get %q: %w", key, ErrNotFound)
	}
	return obj, nil
}

// Delete implements Store.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := validateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}

// List implements Store.
func (m *Memory) List(ctx context.Context, prefix string) ([]string, error) {
	objects, err := m.ListObjects(ctx, prefix)
	return objectKeys(objects), err
}

// ListObjects implements Store.
func (m *Memory) ListObjects(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	var objects []ObjectInfo
	for k, obj := range m.objects {
		if strings.HasPrefix(k, prefix) {
			objects = append(objects, ObjectInfo{Key: k, Size: int64(len(obj))})
		}
	}
	m.mu.RUnlock()
	slices.SortFunc(objects, func(a, b ObjectInfo) int { return strings.Compare(a.Key, b.Key) })
	return objects, nil
}

// Check implements Store; memory is always usable.
func (m *Memory) Check(ctx context.Context) error {
	return ctx.Err()
}
