package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is what a link does to the bytes and connections that cross it.
type Kind int

const (
	// Pass forwards everything as it comes.
	Pass Kind = iota
	// Latency forwards everything Delay late, in both directions, keeping the order.
	Latency
	// Blackhole accepts connections and drops every byte, both ways; neither end is told. When the
	// link heals, the connections it swallowed bytes of are reset (their streams have a hole, as
	// after a partition longer than TCP's retransmission timeout); new ones work again.
	Blackhole
	// Reset resets every open connection and every new one as soon as it is accepted.
	Reset
	// HalfOpen closes the server's side of every connection (the server sees the client go) and
	// keeps the client's side open and silent: the client writes into a peer that has gone. New
	// connections are accepted and never reach the server. Healing resets the client's side, as the
	// peer's kernel would on the client's next write.
	HalfOpen
)

func (k Kind) String() string {
	switch k {
	case Pass:
		return "pass"
	case Latency:
		return "latency"
	case Blackhole:
		return "blackhole"
	case Reset:
		return "reset"
	case HalfOpen:
		return "half-open"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Mode is the state of a link.
type Mode struct {
	Kind  Kind
	Delay time.Duration // added to every chunk, each way, under Latency
}

func (m Mode) String() string {
	if m.Kind == Latency {
		return fmt.Sprintf("latency %v", m.Delay)
	}
	return m.Kind.String()
}

// broken reports whether the mode cuts the link: connections under it carry nothing.
func (m Mode) broken() bool { return m.Kind == Blackhole || m.Kind == HalfOpen || m.Kind == Reset }

// Defaults.
const (
	DefaultDialTimeout = 5 * time.Second
	chunkSize          = 32 << 10
	queuedChunks       = 64 // per direction under Latency: past this, reading waits (backpressure)
)

// Stats counts what a proxy did.
type Stats struct {
	Accepted  int64 // connections accepted
	Active    int   // connections open now
	Dropped   int64 // bytes swallowed (Blackhole, HalfOpen)
	Resets    int64 // connections reset by a fault
	DialFails int64 // connections whose server could not be dialled
}

// Proxy forwards the connections accepted on its listener to Target, through its current Mode.
type Proxy struct {
	target      string
	dialTimeout time.Duration
	ln          net.Listener
	mode        atomic.Pointer[Mode]

	mu     sync.Mutex
	conns  map[*link]struct{}
	closed bool
	wg     sync.WaitGroup

	accepted, dropped, resets, dialFails atomic.Int64
	onDrop                               func(n int) // tests: called after bytes are swallowed
}

// Listen starts a proxy to target on addr ("127.0.0.1:0" for any free port).
func Listen(addr, target string) (*Proxy, error) { return listen(addr, target, nil) }

func listen(addr, target string, onDrop func(int)) (*Proxy, error) {
	if target == "" {
		return nil, errors.New("proxy: no target")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("proxy: listen %s: %w", addr, err)
	}
	p := &Proxy{target: target, dialTimeout: DefaultDialTimeout, ln: ln, conns: map[*link]struct{}{}, onDrop: onDrop}
	p.mode.Store(&Mode{Kind: Pass})
	p.wg.Go(p.accept)
	return p, nil
}

// Addr is the address the proxy listens on.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target is the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Mode is the link's current mode.
func (p *Proxy) Mode() Mode { return *p.mode.Load() }

// Set changes the link's mode; it applies to open connections at once.
func (p *Proxy) Set(m Mode) {
	old := *p.mode.Swap(&m)
	p.mu.Lock()
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		switch {
		case m.Kind == Reset:
			p.reset(l)
		case m.Kind == Blackhole:
			l.poison()
		case m.Kind == HalfOpen:
			l.poison()
			l.closeServer()
		case old.broken() || l.poisoned.Load():
			p.reset(l) // healed: a stream that lost bytes cannot go on
		}
	}
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := len(p.conns)
	p.mu.Unlock()
	return Stats{Accepted: p.accepted.Load(), Active: active, Dropped: p.dropped.Load(),
		Resets: p.resets.Load(), DialFails: p.dialFails.Load()}
}

// Close stops accepting, resets every connection and waits for every goroutine. Safe to call twice.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	links := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.closeAll(true)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.accepted.Add(1)
		l := &link{p: p, client: c, done: make(chan struct{})}
		if !p.track(l) {
			resetConn(c)
			return
		}
		p.wg.Go(l.run)
	}
}

func (p *Proxy) track(l *link) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[l] = struct{}{}
	return true
}

func (p *Proxy) untrack(l *link) {
	p.mu.Lock()
	delete(p.conns, l)
	p.mu.Unlock()
}

func (p *Proxy) reset(l *link) {
	if l.closeAll(true) {
		p.resets.Add(1)
	}
}

func (p *Proxy) drop(n int) {
	p.dropped.Add(int64(n))
	if p.onDrop != nil {
		p.onDrop(n)
	}
}

// resetConn closes c with an RST instead of a FIN, as a crashed or firewalled peer would.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// copyAll reads r until it fails, handing each chunk to deliver.
func copyAll(r io.Reader, deliver func([]byte) bool) {
	buf := make([]byte, chunkSize)
	for {
		n, err := r.Read(buf)
		if n > 0 && !deliver(buf[:n]) {
			return
		}
		if err != nil {
			return
		}
	}
}
