package proxy

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait of these tests; reaching it is a failure, never a way to synchronise.
const testTimeout = 10 * time.Second

// echo is a server that writes back every line it reads and reports each connection's end.
type echo struct {
	ln     net.Listener
	mu     sync.Mutex
	got    []string // lines received, over every connection
	conns  int
	closed chan error // one value per connection: how its read loop ended
	wg     sync.WaitGroup
}

func newEcho(t *testing.T) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{ln: ln, closed: make(chan error, 100)}
	e.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			e.conns++
			e.mu.Unlock()
			e.wg.Go(func() { e.serve(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		e.wg.Wait()
	})
	return e
}

func (e *echo) serve(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			e.closed <- err
			return
		}
		e.mu.Lock()
		e.got = append(e.got, line)
		e.mu.Unlock()
		if _, err := c.Write([]byte(line)); err != nil {
			e.closed <- err
			return
		}
	}
}

func (e *echo) lines() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.got...)
}

func (e *echo) accepted() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conns
}

// newProxy starts a proxy to target; drops receives the size of every swallowed chunk.
func newProxy(t *testing.T, target string) (*Proxy, chan int) {
	t.Helper()
	drops := make(chan int, 1000)
	p, err := listen("127.0.0.1:0", target, func(n int) { drops <- n })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, drops
}

type client struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, p *Proxy) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// roundTrip sends a line and reads its echo.
func (c *client) roundTrip(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		t.Fatalf("write %q: %v", line, err)
	}
	got, err := c.r.ReadString('\n')
	if err != nil || got != line+"\n" {
		t.Fatalf("echo of %q: %q, %v", line, got, err)
	}
}

// readFails waits until a read on c fails, which is what a client sees of a reset connection.
func (c *client) readFails(t *testing.T) error {
	t.Helper()
	_, err := c.r.ReadString('\n')
	if err == nil {
		t.Fatal("read succeeded, want the connection cut")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read timed out after %v: the connection was not cut", testTimeout)
	}
	return err
}

// cutAtOnce checks that a new connection is cut as soon as it is accepted: on loopback the reset
// may arrive before the dial returns, or on the first read.
func cutAtOnce(t *testing.T, p *Proxy) {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), testTimeout)
	if err != nil {
		return
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	(&client{Conn: c, r: bufio.NewReader(c)}).readFails(t)
}

// waitDropped waits until the proxy has swallowed n more bytes.
func waitDropped(t *testing.T, drops chan int, n int) {
	t.Helper()
	deadline := time.After(testTimeout)
	for n > 0 {
		select {
		case d := <-drops:
			n -= d
		case <-deadline:
			t.Fatalf("the proxy did not drop %d more bytes within %v", n, testTimeout)
		}
	}
}

func TestPassForwardsBothWays(t *testing.T) {
	e := newEcho(t)
	p, _ := newProxy(t, e.ln.Addr().String())
	c := dial(t, p)
	for _, l := range []string{"one", "two", string(make([]byte, 3*chunkSize))} {
		c.roundTrip(t, l)
	}
	if st := p.Stats(); st.Accepted != 1 || st.Active != 1 || st.Dropped != 0 {
		t.Errorf("stats %+v, want one accepted, one active, nothing dropped", st)
	}
	if got := e.lines(); len(got) != 3 {
		t.Errorf("server got %d lines, want 3", len(got))
	}
}

func TestLatencyDelaysEachWay(t *testing.T) {
	const delay = 50 * time.Millisecond
	e := newEcho(t)
	p, _ := newProxy(t, e.ln.Addr().String())
	c := dial(t, p)
	c.roundTrip(t, "warm")
	p.Set(Mode{Kind: Latency, Delay: delay})
	start := time.Now()
	c.roundTrip(t, "slow")
	if took := time.Since(start); took < 2*delay {
		t.Errorf("round trip took %v under %v latency each way, want at least %v", took, delay, 2*delay)
	}
	p.Set(Mode{Kind: Pass})
	c.roundTrip(t, "fast again") // the connection survives a latency change
}

func TestBlackholeDropsAndHealResets(t *testing.T) {
	e := newEcho(t)
	p, drops := newProxy(t, e.ln.Addr().String())
	old := dial(t, p)
	old.roundTrip(t, "before")

	p.Set(Mode{Kind: Blackhole})
	if _, err := io.WriteString(old, "lost\n"); err != nil {
		t.Fatal(err)
	}
	waitDropped(t, drops, len("lost\n"))
	fresh := dial(t, p) // accepted, never forwarded
	if _, err := io.WriteString(fresh, "also lost\n"); err != nil {
		t.Fatal(err)
	}
	waitDropped(t, drops, len("also lost\n"))
	if got := e.lines(); len(got) != 1 || e.accepted() != 1 {
		t.Errorf("server got %q over %d connections, want only the line sent before the blackhole", got, e.accepted())
	}

	p.Set(Mode{Kind: Pass})
	old.readFails(t)
	fresh.readFails(t)
	dial(t, p).roundTrip(t, "after")
	if st := p.Stats(); st.Resets != 2 {
		t.Errorf("stats %+v, want the 2 blackholed connections reset on heal", st)
	}
}

func TestResetCutsOpenAndNewConnections(t *testing.T) {
	e := newEcho(t)
	p, _ := newProxy(t, e.ln.Addr().String())
	old := dial(t, p)
	old.roundTrip(t, "before")
	p.Set(Mode{Kind: Reset})
	old.readFails(t)
	cutAtOnce(t, p)
	p.Set(Mode{Kind: Pass})
	dial(t, p).roundTrip(t, "after")
}

func TestHalfOpenClosesOnlyTheServerSide(t *testing.T) {
	e := newEcho(t)
	p, drops := newProxy(t, e.ln.Addr().String())
	c := dial(t, p)
	c.roundTrip(t, "before")
	p.Set(Mode{Kind: HalfOpen})
	select {
	case err := <-e.closed:
		if !errors.Is(err, io.EOF) {
			t.Errorf("server's side ended with %v, want EOF", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the server's side was not closed")
	}
	if _, err := io.WriteString(c, "into the void\n"); err != nil {
		t.Fatalf("the client's side must stay open: %v", err)
	}
	waitDropped(t, drops, len("into the void\n"))
	p.Set(Mode{Kind: Pass})
	c.readFails(t)
	dial(t, p).roundTrip(t, "after")
}

func TestUnreachableServerResetsClient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p, _ := newProxy(t, addr)
	cutAtOnce(t, p)
	if st := p.Stats(); st.DialFails != 1 {
		t.Errorf("stats %+v, want one failed dial", st)
	}
}

func TestCloseCutsConnectionsAndIsIdempotent(t *testing.T) {
	e := newEcho(t)
	p, _ := newProxy(t, e.ln.Addr().String())
	c := dial(t, p)
	c.roundTrip(t, "hello")
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	c.readFails(t)
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if st := p.Stats(); st.Active != 0 {
		t.Errorf("%d connections still tracked after Close", st.Active)
	}
}

func TestModeString(t *testing.T) {
	for m, want := range map[Mode]string{
		{Kind: Pass}: "pass", {Kind: Latency, Delay: time.Second}: "latency 1s", {Kind: Blackhole}: "blackhole",
		{Kind: Reset}: "reset", {Kind: HalfOpen}: "half-open",
	} {
		if got := m.String(); got != want {
			t.Errorf("%#v.String() = %q, want %q", m, got, want)
		}
	}
}
