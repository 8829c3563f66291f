package segstore

import (
	"context"
	"fmt"
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
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[key]; ok {
		return fmt.Errorf("memory: put %q: %w", key, ErrExists)
	}
	m.objects[key] = parts(data).concat()
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
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.RLock()
	var keys []string
	for k := range m.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	m.mu.RUnlock()
	slices.Sort(keys)
	return keys, nil
}

// Check implements Store; memory is always usable.
func (m *Memory) Check(ctx context.Context) error {
	return ctx.Err()
}
