package proxy

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// link is one proxied connection: the client's side, accepted by the proxy, and the server's side,
// dialled by it. Each direction is a reader goroutine that applies the mode to each chunk and a
// writer goroutine that delivers chunks when they are due, so that added latency delays bytes
// without limiting throughput.
type link struct {
	p      *Proxy
	client net.Conn

	mu       sync.Mutex
	server   net.Conn // nil until dialled, or when never dialled (the link was broken at accept)
	closed   bool
	poisoned atomic.Bool   // bytes were dropped: the streams can never be forwarded again
	done     chan struct{} // closed by closeAll
}

type chunk struct {
	b   []byte
	due time.Time
}

func (l *link) run() {
	defer l.p.untrack(l)
	defer l.closeAll(false)
	m := l.p.Mode()
	switch {
	case m.Kind == Reset:
		l.p.reset(l)
		return
	case m.broken():
		l.poison()
		copyAll(l.client, func(b []byte) bool { l.p.drop(len(b)); return true })
		return
	}
	server, err := net.DialTimeout("tcp", l.p.target, l.p.dialTimeout)
	if err != nil {
		l.p.dialFails.Add(1)
		l.p.reset(l)
		return
	}
	if !l.setServer(server) {
		return
	}
	var wg sync.WaitGroup
	wg.Go(func() { l.pipe(l.client, server, true) })
	wg.Go(func() { l.pipe(server, l.client, false) })
	wg.Wait()
}

func (l *link) setServer(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		resetConn(c)
		return false
	}
	l.server = c
	if l.p.Mode().Kind == HalfOpen { // the link broke while dialling
		l.poisoned.Store(true)
		_ = c.Close()
	}
	return true
}

// pipe carries one direction until either side fails. When the link is healthy, the end of one
// direction ends the link; when it is poisoned, the client's side stays open (silent) until the
// fault heals or the client gives up.
func (l *link) pipe(src, dst net.Conn, fromClient bool) {
	q := make(chan chunk, queuedChunks)
	var wg sync.WaitGroup
	wg.Go(func() { l.deliver(dst, q) })
	copyAll(src, func(b []byte) bool {
		m := l.p.Mode()
		if l.poisoned.Load() || m.broken() {
			l.poison()
			l.p.drop(len(b))
			return true
		}
		c := chunk{b: append([]byte(nil), b...)}
		if m.Kind == Latency {
			c.due = time.Now().Add(m.Delay)
		}
		select {
		case q <- c:
			return true
		case <-l.done:
			return false
		}
	})
	close(q)
	wg.Wait()
	if fromClient || !l.poisoned.Load() {
		l.closeAll(false)
		return
	}
	// The server went while the link was cut: the client must not hear of it. The other direction
	// goes on reading the client and dropping what it sends until the fault heals.
	l.closeServer()
}

// deliver writes each chunk of q to dst when it is due; chunks of a poisoned link are dropped.
func (l *link) deliver(dst net.Conn, q <-chan chunk) {
	t := time.NewTimer(0)
	defer t.Stop()
	for c := range q {
		if wait := time.Until(c.due); wait > 0 {
			t.Reset(wait)
			select {
			case <-t.C:
			case <-l.done:
				continue // drain q so that the reader is not stuck
			}
		}
		if l.poisoned.Load() {
			l.p.drop(len(c.b))
			continue
		}
		if _, err := dst.Write(c.b); err != nil {
			l.closeAll(false)
		}
	}
}

func (l *link) poison() { l.poisoned.Store(true) }

// closeServer closes the server's side with a FIN: the server sees the client go.
func (l *link) closeServer() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.server != nil {
		_ = l.server.Close()
	}
}

// closeAll closes both sides, with an RST when reset; it reports whether this call closed them.
func (l *link) closeAll(reset bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	close(l.done)
	for _, c := range []net.Conn{l.client, l.server} {
		switch {
		case c == nil:
		case reset:
			resetConn(c)
		default:
			_ = c.Close()
		}
	}
	return true
}
