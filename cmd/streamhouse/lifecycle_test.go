package main

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fakeServer stands in for an agent; with stuck set, Shutdown waits until Close or its deadline.
type fakeServer struct {
	stuck     bool
	done      chan struct{}
	once      sync.Once
	err       error
	shutdowns atomic.Int32
	closes    atomic.Int32
}

func newFake(stuck bool) *fakeServer { return &fakeServer{stuck: stuck, done: make(chan struct{})} }

func (f *fakeServer) Done() <-chan struct{} { return f.done }
func (f *fakeServer) Err() error            { return f.err }
func (f *fakeServer) stop()                 { f.once.Do(func() { close(f.done) }) }

func (f *fakeServer) Shutdown(ctx context.Context) error {
	f.shutdowns.Add(1)
	if f.stuck {
		select {
		case <-f.done:
			return errors.New("closed while shutting down")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.stop()
	return nil
}

func (f *fakeServer) Close() error {
	f.closes.Add(1)
	f.stop()
	return nil
}

// serveAsync runs serve and returns its result channel.
func serveAsync(c *testCLI, servers ...*fakeServer) chan error {
	res := make(chan error, 1)
	go func() { res <- serve(c.cli, hclog.NewNullLogger(), servers) }()
	return res
}

func waitErr(t *testing.T, res chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-res:
		return err
	case <-time.After(within):
		t.Fatalf("serve still running after %v", within)
		return nil
	}
}

func TestServeGracefulOnSignal(t *testing.T) {
	c := newTestCLI(t, nil, "")
	a, b := newFake(false), newFake(false)
	res := serveAsync(c, a, b)
	c.sig <- syscall.SIGTERM
	if err := waitErr(t, res, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*fakeServer{a, b} {
		if f.shutdowns.Load() != 1 {
			t.Errorf("Shutdown called %d times", f.shutdowns.Load())
		}
	}
}

// A second signal during a slow graceful shutdown stops everything at once.
func TestServeSecondSignalCloses(t *testing.T) {
	c := newTestCLI(t, nil, "")
	a := newFake(true)
	res := serveAsync(c, a)
	c.sig <- syscall.SIGINT
	time.Sleep(50 * time.Millisecond)
	c.sig <- syscall.SIGINT
	err := waitErr(t, res, 5*time.Second) // well before shutdownTimeout
	if a.closes.Load() == 0 || err == nil || !strings.Contains(err.Error(), "closed while shutting down") {
		t.Errorf("closes %d, err %v", a.closes.Load(), err)
	}
}

// An agent that stops by itself (a fatal error) takes the others down and is the command's error.
func TestServeAgentFailure(t *testing.T) {
	c := newTestCLI(t, nil, "")
	a, b := newFake(false), newFake(false)
	res := serveAsync(c, a, b)
	b.err = errors.New("boom")
	b.stop()
	err := waitErr(t, res, 5*time.Second)
	if err == nil || err.Error() != "agent stopped: boom" {
		t.Errorf("err = %v", err)
	}
	if a.shutdowns.Load() != 1 {
		t.Errorf("the healthy agent was not shut down")
	}
}
