package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Accept backoff, as net/http's Server.Serve: a temporary accept error (EMFILE, ENFILE,
// ECONNABORTED, ...) is retried after 5 ms, doubling up to 1 s, until an accept succeeds.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// listenState is what the Kafka listener tells /readyz: why it is not accepting connections, if it
// is not.
type listenState struct {
	mu        sync.Mutex
	acceptErr error // the last accept error, until an accept succeeds
}

// notAccepting is the reason the listener cannot take new connections now, or "".
func (s *listenState) notAccepting() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.acceptErr != nil {
		return "kafka listener cannot accept connections: " + s.acceptErr.Error()
	}
	return ""
}

func (s *listenState) setAcceptErr(err error) {
	s.mu.Lock()
	s.acceptErr = err
	s.mu.Unlock()
}

// serveKafka accepts Kafka connections until ctx is cancelled. A temporary accept error is retried
// after a backoff; any other stops the agent, so that it does not stay registered, leading its
// partitions, with no listener.
func (a *Agent) serveKafka(ctx context.Context, ln net.Listener) {
	var conns sync.WaitGroup
	defer conns.Wait()
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if !temporary(err) {
				a.fail(fmt.Errorf("agent: kafka listener: %w", err))
				return
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			a.acceptFailed(err, backoff)
			if !sleepCtx(ctx, backoff) {
				return
			}
			continue
		}
		if backoff != 0 {
			backoff = 0
			a.listen.setAcceptErr(nil)
			a.log.Info("kafka listener accepts connections again")
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			a.serveConn(ctx, nc)
		}()
	}
}

// acceptFailed records a temporary accept error: counted, reported by /readyz, logged at most once per
// logEvery.
func (a *Agent) acceptFailed(err error, retry time.Duration) {
	a.metrics.acceptErrors.Inc()
	a.listen.setAcceptErr(err)
	if ok, suppressed := a.rateLog.allow("accept"); ok {
		a.log.Warn("kafka listener cannot accept connections; retrying", "error", err, "retry_in", retry,
			"suppressed", suppressed)
	}
}

// temporary reports whether an accept error may clear by itself, as net/http judges it: the
// descriptor limits (EMFILE, ENFILE) and a connection aborted before it was accepted are temporary.
func temporary(err error) bool {
	var te interface{ Temporary() bool }
	return errors.As(err, &te) && te.Temporary()
}

// sleepCtx waits d, or until ctx ends (false).
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
