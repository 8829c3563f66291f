package agent

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// flakyListener fails Accept as a process out of file descriptors does, while failing is set.
type flakyListener struct {
	net.Listener
	failing atomic.Bool
	fails   atomic.Int64
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failing.Load() {
		l.fails.Add(1)
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// readyz returns the status and body of a's /readyz.
func readyz(t *testing.T, a *Agent) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + a.HTTPAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// An accept error such as EMFILE does not stop the Kafka listener: it backs off and accepts again once
// it can, and /readyz fails meanwhile, naming the error. Before, the first such error ended the
// accept loop for good while /readyz stayed 200 and the agent kept its partitions.
func TestListenerSurvivesAcceptErrors(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	fl := &flakyListener{}
	fl.failing.Store(true)
	a := tc.newAgent("a1")
	a.wrapListener = func(ln net.Listener) net.Listener { fl.Listener = ln; return fl }
	startAgent(t, a)

	waitFor(t, "accept to fail twice", func() bool { return fl.fails.Load() >= 2 })
	waitFor(t, "/readyz to report the accept error", func() bool {
		code, body := readyz(t, a)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "too many open files")
	})
	fl.failing.Store(false)
	c := dialRaw(t, a)
	c.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)
	waitFor(t, "/readyz to answer 200 again", func() bool { code, _ := readyz(t, a); return code == http.StatusOK })
	if n := metricValue(t, a, "streamhouse_kafka_accept_errors_total"); n < 2 {
		t.Errorf("streamhouse_kafka_accept_errors_total = %v, want at least 2", n)
	}
}

// brokenListener fails Accept with an error that will not clear.
type brokenListener struct{ net.Listener }

func (l brokenListener) Accept() (net.Conn, error) { return nil, errors.New("listener broke") }

// An accept error that is not temporary stops the agent, as a crash would (its leases then move),
// rather than leaving it registered and leading partitions with no listener.
func TestListenerPermanentErrorStopsAgent(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.newAgent("a1")
	a.wrapListener = func(ln net.Listener) net.Listener { return brokenListener{ln} }
	startAgent(t, a)
	waitChan(t, "the agent to stop", a.Done())
	if err := a.Err(); err == nil || !strings.Contains(err.Error(), "listener broke") {
		t.Fatalf("agent stopped with %v, want the listener's error", err)
	}
}

func TestRateLog(t *testing.T) {
	t.Parallel()
	now := time.Unix(0, 0)
	r := newRateLog(time.Second)
	r.now = func() time.Time { return now }
	step := func(d time.Duration, kind string, wantOK bool, wantSuppressed int) {
		t.Helper()
		now = now.Add(d)
		if ok, n := r.allow(kind); ok != wantOK || n != wantSuppressed {
			t.Fatalf("at %v, %s: allow = %v, %d; want %v, %d", now, kind, ok, n, wantOK, wantSuppressed)
		}
	}
	step(0, "frame", true, 0)
	step(100*time.Millisecond, "frame", false, 0)
	step(100*time.Millisecond, "accept", true, 0) // kinds are limited apart
	step(100*time.Millisecond, "frame", false, 0)
	step(time.Second, "frame", true, 2)
	step(time.Second, "frame", true, 0)
}
