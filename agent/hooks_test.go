package agent

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// errInjected is the etcd failure the session hooks inject.
var errInjected = errors.New("injected etcd failure")

// sessionHooks puts a fault layer around every etcd session an agent registers (set it as the
// agent's wrapSession before Start). Each hook runs in place of the real call and may call next to
// reach it.
type sessionHooks struct {
	stop chan struct{} // closed at test cleanup: ends the Done mergers

	mu       sync.Mutex
	sessions []*hookedSession
	commit   func(ctx context.Context, commits []coord.Commit, next func() []error) []error
	acquire  func(ctx context.Context, tp coord.TP) error
	resign   func(ctx context.Context, tp coord.TP) error
}

func newSessionHooks(t *testing.T) *sessionHooks {
	h := &sessionHooks{stop: make(chan struct{})}
	t.Cleanup(func() { close(h.stop) })
	return h
}

// hookedAgent starts agent id of tc with session hooks around its etcd sessions.
func hookedAgent(t *testing.T, tc *testCluster, id string) (*Agent, *sessionHooks) {
	t.Helper()
	h := newSessionHooks(t)
	a := tc.newAgent(id)
	a.wrapSession = h.wrap
	return startAgent(t, a), h
}

type hookedSession struct {
	session
	h    *sessionHooks
	lost chan struct{} // closed by lose: the agent sees its session as lost
	once sync.Once
	done chan struct{}
}

// wrap is the agent's wrapSession.
func (h *sessionHooks) wrap(s session) session {
	hs := &hookedSession{session: s, h: h, lost: make(chan struct{}), done: make(chan struct{})}
	go func() {
		select {
		case <-s.Done():
		case <-hs.lost:
		case <-h.stop:
			return
		}
		close(hs.done)
	}()
	h.mu.Lock()
	h.sessions = append(h.sessions, hs)
	h.mu.Unlock()
	return hs
}

// session returns the i-th session registered through the hooks.
func (h *sessionHooks) session(t *testing.T, i int) *hookedSession {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if i >= len(h.sessions) {
		t.Fatalf("session %d not registered (have %d)", i, len(h.sessions))
	}
	return h.sessions[i]
}

// count is how many sessions have been registered through the hooks.
func (h *sessionHooks) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// coord is the underlying coord session.
func (s *hookedSession) coord() *coord.Session { return s.session.(*coord.Session) }

// lose makes the agent see this session as lost (its Done closes) although the lease lives on.
func (s *hookedSession) lose() { s.once.Do(func() { close(s.lost) }) }

func (h *sessionHooks) setCommit(fn func(ctx context.Context, commits []coord.Commit, next func() []error) []error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.commit = fn
}

func (h *sessionHooks) setAcquire(fn func(ctx context.Context, tp coord.TP) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.acquire = fn
}

func (h *sessionHooks) setResign(fn func(ctx context.Context, tp coord.TP) error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.resign = fn
}

func (s *hookedSession) Done() <-chan struct{} { return s.done }

func (s *hookedSession) Commit(ctx context.Context, commits []coord.Commit) []error {
	s.h.mu.Lock()
	fn := s.h.commit
	s.h.mu.Unlock()
	next := func() []error { return s.session.Commit(ctx, commits) }
	if fn == nil {
		return next()
	}
	return fn(ctx, commits, next)
}

func (s *hookedSession) AcquireTopic(ctx context.Context, t coord.Topic, partition int32, hint coord.EpochHint) (coord.Leadership, error) {
	s.h.mu.Lock()
	fn := s.h.acquire
	s.h.mu.Unlock()
	if fn != nil {
		if err := fn(ctx, t.TP(partition)); err != nil {
			return coord.Leadership{}, err
		}
	}
	return s.session.AcquireTopic(ctx, t, partition, hint)
}

func (s *hookedSession) Resign(ctx context.Context, tp coord.TP, epoch int64) error {
	s.h.mu.Lock()
	fn := s.h.resign
	s.h.mu.Unlock()
	if fn != nil {
		if err := fn(ctx, tp); err != nil {
			return err
		}
	}
	return s.session.Resign(ctx, tp, epoch)
}

// failAll answers every commit with err.
func failAll(commits []coord.Commit, err error) []error {
	errs := make([]error, len(commits))
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// gate is a channel a test opens once; it also opens at test cleanup (before the agents close), so
// that a failing test never leaves an agent's goroutine blocked on it.
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{ch: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// C is closed once the gate is open.
func (g *gate) C() <-chan struct{} { return g.ch }

// holdPuts makes every S3 PUT to store wait until release opens; entered closes when the first
// PUT arrives.
func holdPuts(t *testing.T, store *segstore.Faulty) (entered <-chan struct{}, release *gate) {
	first, release := make(chan struct{}), newGate(t)
	var once sync.Once
	store.SetFault(segstore.OpPut, func(string) error {
		once.Do(func() { close(first) })
		<-release.C()
		return nil
	})
	return first, release
}
