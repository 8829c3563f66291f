package agent

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// Found by the chaos suite (e2e/chaos, an agent cut off from etcd): an agent whose view of etcd lags
// (cut off, or just restarted) answered OFFSET_OUT_OF_RANGE to a fetch past its view's high
// watermark, though other agents had served that offset. Consumers take that answer as the log
// having lost data and rewind: franz-go went back hundreds of offsets, or to offset 0, re-reading
// what it had consumed. An offset past a view that may lag is not known to be out of range: the
// agent checks with etcd first, and answers OFFSET_NOT_AVAILABLE (retriable) when it cannot tell.
func TestFetchPastStaleViewIsNotOutOfRange(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1")
	cl := kgoClient(t, nil, a1)
	createLedTopic(t, cl, a1, "stale", 1, nil)
	tp := topicTP(t, a1, "stale", 0)
	r := newRelay(t, sharedEtcd[0])
	a2 := startAgent(t, newAgentVia(t, tc, "a2", r.addr(), tc.store))
	c1, c2 := dialRaw(t, a1), dialRaw(t, a2)
	wantOK(t, "produce", c1.produceOne("stale", 0, valueBatch(-1, -1, -1, nil, "a")).ErrorCode)
	waitFor(t, "a2 to see offset 0", func() bool { return a2.cache.HighWatermark(tp) == 1 })

	r.freeze() // a2 hears nothing more from etcd
	wantOK(t, "produce while a2 is cut off", c1.produceOne("stale", 0, valueBatch(-1, -1, -1, nil, "b")).ErrorCode)
	if got := c1.fetchOne("stale", 0, 1, 1<<20); got.ErrorCode != 0 || got.HighWatermark != 2 {
		t.Fatalf("fetch of offset 1 from a1: error %d, high watermark %d", got.ErrorCode, got.HighWatermark)
	}
	// A consumer that read offset 1 from a1 now asks a2 for offset 2.
	sp := c2.fetchOne("stale", 0, 2, 1<<20)
	wantCode(t, "fetch past a stale view", sp.ErrorCode, kerr.OffsetNotAvailable)

	// Past the true end it is out of range, from an agent whose view is current.
	wantCode(t, "fetch past the log end", c1.fetchOne("stale", 0, 3, 1<<20).ErrorCode, kerr.OffsetOutOfRange)

	r.thaw()
	waitFor(t, "a2 to catch up", func() bool { return a2.cache.HighWatermark(tp) == 2 })
	wantOK(t, "fetch at the log end once a2 caught up", c2.fetchOne("stale", 0, 2, 1<<20).ErrorCode)
}

// newAgentVia is tc.newAgent with its etcd client connected through endpoint, over store.
func newAgentVia(t *testing.T, tc *testCluster, id, endpoint string, store objectStore, opts ...func(*Config)) *Agent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	etcd, err := coord.Connect(ctx, coord.Config{Endpoints: []string{endpoint}, Prefix: tc.prefix, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	a, err := New(testConfig(t, id, opts...), etcd, store)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// relay forwards TCP connections to a target. Frozen, it holds every byte back in both directions,
// as a network partition does to TCP; thawed, it delivers them and goes on.
type relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu     sync.Mutex
	thawed chan struct{} // closed while traffic flows
	conns  []net.Conn
	closed bool
}

func newRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target, thawed: make(chan struct{})}
	close(r.thawed)
	r.wg.Go(r.accept)
	t.Cleanup(r.close)
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.thawed = make(chan struct{})
}

func (r *relay) thaw() {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.thawed:
	default:
		close(r.thawed)
	}
}

func (r *relay) gate() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.thawed
}

func (r *relay) track(cs ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.conns = append(r.conns, cs...)
	return !r.closed
}

func (r *relay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		if !r.track(c, s) {
			c.Close()
			s.Close()
			return
		}
		r.wg.Go(func() { r.pipe(c, s) })
		r.wg.Go(func() { r.pipe(s, c) })
	}
}

// pipe copies src to dst, holding each chunk while the relay is frozen.
func (r *relay) pipe(src, dst net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			<-r.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				src.Close()
			}
			return
		}
	}
}

func (r *relay) close() {
	r.ln.Close()
	r.thaw()
	r.mu.Lock()
	r.closed = true
	for _, c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
}
