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
	atCap     int   // the connections open while the listener waits at max.connections; 0: not waiting
}

// notAccepting is the reason the listener cannot take new connections now, or "".
func (s *listenState) notAccepting() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.acceptErr != nil:
		return "kafka listener cannot accept connections: " + s.acceptErr.Error()
	case s.atCap > 0:
		return fmt.Sprintf("kafka listener at max.connections (%d open; --max-connections)", s.atCap)
	}
	return ""
}

func (s *listenState) setAtCap(open int) {
	s.mu.Lock()
	s.atCap = open
	s.mu.Unlock()
}

func (s *listenState) setAcceptErr(err error) {
	s.mu.Lock()
	s.acceptErr = err
	s.mu.Unlock()
}

// serveKafka accepts Kafka connections until ctx is cancelled. A temporary accept error is retried
// after a backoff; any other stops the agent, so that it does not stay registered, leading its
// partitions, with no listener.
func (a *Agent) serveKafka(ctx context.Context, l *kafkaListener) {
	ln := l.ln
	var conns sync.WaitGroup
	defer conns.Wait()
	var backoff time.Duration
	for {
		if !a.awaitConnRoom(ctx) {
			return
		}
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
		ip := remoteIP(nc)
		if !a.conns.admit(ip) {
			a.limitHit(limitMaxConnectionsPerIP)
			a.warnBadFrame(a.log, "closing connection: its address has max.connections.per.ip open",
				"client", nc.RemoteAddr().String(), "max", a.conns.perIP)
			nc.Close()
			continue
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer a.conns.done(ip)
			a.serveConn(ctx, nc, l)
		}()
	}
}

// awaitConnRoom waits while max.connections are open, as Kafka's acceptor does: new connections wait in
// the kernel's backlog meanwhile, holding no descriptor here, and /readyz says why. It is false once ctx
// ends.
func (a *Agent) awaitConnRoom(ctx context.Context) bool {
	open, full := a.conns.full()
	if !full {
		return true
	}
	a.limitHit(limitMaxConnections)
	a.listen.setAtCap(open)
	defer a.listen.setAtCap(0)
	if ok, suppressed := a.rateLog.allow("max-connections"); ok {
		a.log.Warn("kafka listener at max.connections: new connections wait", "open", open, "suppressed", suppressed)
	}
	return a.conns.waitRoom(ctx)
}

// remoteIP is the address a connection came from, without its port.
func remoteIP(nc net.Conn) string {
	if ta, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(nc.RemoteAddr().String())
	if err != nil {
		return nc.RemoteAddr().String()
	}
	return host
}

// connLimiter is max.connections and max.connections.per.ip. Only the accept loop admits, so a
// connection admitted after waitRoom never exceeds the cap.
type connLimiter struct {
	max, perIP int // 0: no cap

	mu    sync.Mutex
	open  int
	byIP  map[string]int
	freed chan struct{} // closed and replaced whenever a connection ends
}

func newConnLimiter(max, perIP int) *connLimiter {
	return &connLimiter{max: max, perIP: perIP, byIP: map[string]int{}, freed: make(chan struct{})}
}

// full reports the open connections and whether they are max.connections.
func (l *connLimiter) full() (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open, l.max > 0 && l.open >= l.max
}

// waitRoom waits until fewer than max connections are open, or ctx ends (false).
func (l *connLimiter) waitRoom(ctx context.Context) bool {
	for {
		l.mu.Lock()
		if l.max == 0 || l.open < l.max {
			l.mu.Unlock()
			return true
		}
		freed := l.freed
		l.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return false
		}
	}
}

// admit counts a new connection from ip, unless ip has max.connections.per.ip open already.
func (l *connLimiter) admit(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.perIP > 0 && l.byIP[ip] >= l.perIP {
		return false
	}
	l.open++
	l.byIP[ip]++
	return true
}

// done uncounts an ended connection from ip.
func (l *connLimiter) done(ip string) {
	l.mu.Lock()
	l.open--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	close(l.freed)
	l.freed = make(chan struct{})
	l.mu.Unlock()
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
