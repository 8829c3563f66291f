package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// One embedded etcd serves the whole test binary; each test works under its own prefix.
var sharedEtcd []string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "coord-test-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// etcd's own default --max-txn-ops and --max-request-bytes, as a bare etcd has: a client allowed
	// more falls back to them.
	e, err := StartEmbedded(ctx, EmbedConfig{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
		MaxTxnOps: DefaultMaxTxnOps, MaxRequestBytes: DefaultMaxRequestBytes, UnsafeNoFsync: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close()
	sharedEtcd = e.Endpoints()
	return m.Run()
}

// testEtcd is a test's slice of the shared etcd: its endpoints and a prefix of its own.
type testEtcd struct {
	Endpoints []string
	Prefix    string
}

var prefixSeq atomic.Int64

func newTestEtcd(t *testing.T) *testEtcd {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9_]+`).ReplaceAllString(t.Name(), "_")
	return &testEtcd{
		Endpoints: sharedEtcd,
		Prefix:    fmt.Sprintf("/t/%s-%d/", name, prefixSeq.Add(1)),
	}
}

// client connects under the test's prefix, with metrics on a registry of its own.
func (te *testEtcd) client(t *testing.T, opts ...func(*Config)) *Client {
	t.Helper()
	cfg := Config{
		Endpoints:  te.Endpoints,
		Prefix:     te.Prefix,
		Logger:     testLogger(t),
		Registerer: prometheus.NewRegistry(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	c, err := Connect(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// session registers agent id at addr with a TTL long enough never to expire during a test.
func newSession(t *testing.T, c *Client, id, addr string) *Session {
	t.Helper()
	s, err := c.Register(testCtx(t), AgentInfo{ID: id, Addr: addr, AZ: "az1", Group: "default"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// newTopic creates a topic with n partitions.
func newTopic(t *testing.T, c *Client, name string, n int32) Topic {
	t.Helper()
	top, err := c.CreateTopic(testCtx(t), Topic{Name: name, Partitions: n})
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// runCache runs a cache until the test ends and waits for its first load.
func runCache(t *testing.T, c *Client, hook func(k *Cache, rev int64)) *Cache {
	t.Helper()
	k := c.NewCache(testLogger(t))
	if hook != nil {
		k.afterLoad = func(rev int64) { hook(k, rev) }
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("cache Run: %v", err)
		}
	})
	waitChan(t, k.Ready(), "cache ready")
	return k
}

// testCtx bounds every etcd call of a test so that a bug fails instead of hanging.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

func notClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s: closed, want open", what)
	default:
	}
}

// entry builds an index entry of n offsets from base in one extent of size bytes.
func entry(base, n int64, size int32) IndexEntry {
	return IndexEntry{
		BaseOffset: base,
		LastOffset: base + n - 1,
		Extents:    []Extent{{Object: fmt.Sprintf("seg/%020d", base), Pos: 32, Len: size, CRC: 7}},
	}
}

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

// testLogger routes logs to t.Log until the test's cleanups are done.
func testLogger(t *testing.T) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return hclog.New(&hclog.LoggerOptions{Name: "test", Output: w, Level: hclog.Debug})
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// acquire takes tp's leadership for s and returns its fencing epoch.
func acquire(t *testing.T, s *Session, tp TP) int64 {
	t.Helper()
	l, err := s.Acquire(testCtx(t), tp, EpochHint{})
	if err != nil {
		t.Fatal(err)
	}
	return l.Rev
}

// loadPartition reads tp's next offset and producer states from etcd, as a fresh view holds them.
func loadPartition(t *testing.T, c *Client, tp TP) (int64, []ProducerState) {
	t.Helper()
	st, _, err := c.loadState(testCtx(t), c.log)
	if err != nil {
		t.Fatal(err)
	}
	p := st.parts[tp]
	if p == nil {
		return 0, nil
	}
	return p.hwm, p.producerStates()
}

// rev is the fencing epoch of an Acquire's leadership.
func rev(l Leadership, err error) (int64, error) { return l.Rev, err }
