package agent

import (
	"bufio"
	"encoding/binary"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// dialRawFrom is dialRaw from a local address of the loopback network other than 127.0.0.1: another
// client address, for the per-address limits.
func dialRawFrom(t *testing.T, a *Agent, ip string) *rawConn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	nc, err := d.Dial("tcp", a.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// hits reads streamhouse_limit_hits_total of one limit.
func hits(a *Agent, limit string) float64 {
	return testutil.ToFloat64(a.metrics.limitHits.WithLabelValues(limit))
}

func withLimits(f func(*Limits)) func(*Config) { return func(c *Config) { f(&c.Limits) } }

// A connection over its address's max.connections.per.ip is closed at once; other addresses are not
// affected.
func TestMaxConnectionsPerIP(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", withLimits(func(l *Limits) { l.MaxConnectionsPerIP = 2 }))
	for range 2 {
		dialRawFrom(t, a, "127.0.0.2").roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)
	}
	over := dialRawFrom(t, a, "127.0.0.2")
	over.send(kmsg.NewPtrApiVersionsRequest(), 3)
	over.expectClosed()
	dialRawFrom(t, a, "127.0.0.3").roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)
	if n := hits(a, limitMaxConnectionsPerIP); n != 1 {
		t.Errorf("max_connections_per_ip hits = %v, want 1", n)
	}
}

// At max.connections the listener stops accepting, as Kafka's does: a new connection waits, /readyz
// says why, and the connection is served once another closes.
func TestMaxConnectionsWaits(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", withLimits(func(l *Limits) { l.MaxConnections = 2 }))
	first := dialRaw(t, a)
	first.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)
	dialRaw(t, a).roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)
	waiting := dialRaw(t, a)
	corr := waiting.send(kmsg.NewPtrApiVersionsRequest(), 3)
	waitFor(t, "/readyz to report max.connections", func() bool {
		code, body := readyz(t, a)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "max.connections")
	})
	if n := metricValue(t, a, "streamhouse_kafka_connections"); n != 2 {
		t.Fatalf("%v connections open at a cap of 2", n)
	}
	first.nc.Close()
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.SetVersion(3)
	if got := waiting.recv(resp); got != corr {
		t.Fatalf("correlation id %d, want %d", got, corr)
	}
	waiting.nc.Close() // two open is still the cap
	waitFor(t, "/readyz to answer 200 again", func() bool { code, _ := readyz(t, a); return code == http.StatusOK })
	if n := hits(a, limitMaxConnections); n < 1 {
		t.Errorf("max_connections hits = %v, want at least 1", n)
	}
}

// A connection with nothing in flight is closed after connections.max.idle; one waiting for a
// long-polling fetch is not idle, however long the fetch waits.
func TestIdleConnectionsClosed(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", withLimits(func(l *Limits) { l.ConnectionsMaxIdle = 200 * time.Millisecond }))
	busy := ledTopicConn(t, a, "idle")
	idle := dialRaw(t, a)
	idle.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)

	fetch := fetchReq("idle", 1000, 1, 1<<20, fetchPart{0, 0, 1 << 20}) // five idle periods; nothing to read
	corr := busy.send(fetch, fetchVersion)
	idle.expectClosed()
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(fetchVersion)
	if got := busy.recv(resp); got != corr {
		t.Fatalf("fetch answered with correlation id %d, want %d", got, corr)
	}
	if n := hits(a, limitConnectionsMaxIdle); n < 1 {
		t.Errorf("connections_max_idle hits = %v, want at least 1", n)
	}
}

// A frame begun and never finished is closed after the frame timeout, its budget returned.
func TestPartialFrameTimesOut(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", withLimits(func(l *Limits) { l.FrameTimeout = 200 * time.Millisecond }))
	c := dialRaw(t, a)
	frame := frameOf(kmsg.NewPtrMetadataRequest(), 12, 1)
	c.writeRaw(frame[:len(frame)-1])
	c.expectClosed()
	if n := hits(a, limitFrameTimeout); n != 1 {
		t.Errorf("frame_timeout hits = %v, want 1", n)
	}
	waitFor(t, "the budget to be returned", func() bool { return metricValue(t, a, "streamhouse_request_bytes_held") == 0 })
}

// A fetch waits at most --fetch-max-wait, whatever MaxWaitMillis it asks.
func TestFetchMaxWaitCapped(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", withLimits(func(l *Limits) { l.FetchMaxWait = 100 * time.Millisecond }))
	c := ledTopicConn(t, a, "capped")
	fetch := fetchReq("capped", math.MaxInt32, 1, 1<<20, fetchPart{0, 0, 1 << 20})
	c.roundTrip(fetch, fetchVersion)
	if n := hits(a, limitFetchMaxWait); n != 1 {
		t.Errorf("fetch_max_wait hits = %v, want 1", n)
	}
}

// sizePrefix is the first bytes of a frame of n bytes of API key: what a client that stops halfway
// has sent.
func sizePrefix(n int, key kmsg.Key) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(n))
	return binary.BigEndian.AppendUint16(b, uint16(key))
}

// Reading waits for room in the request budget instead of allocating: two half-sent frames that do not
// fit together hold one charge between them, a small request still fits beside it and is served, and
// the waiting frame is charged once the first connection goes.
func TestRequestBudgetWaits(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.MaxRequestBytes, c.QueuedMaxRequestBytes = 1<<20, 4<<20 })
	charge := float64(kwire.FrameCharge(int16(kmsg.Produce), 1<<20))
	first := dialRaw(t, a)
	first.writeRaw(sizePrefix(1<<20, kmsg.Produce))
	waitFor(t, "the first frame to be charged", func() bool { return metricValue(t, a, "streamhouse_request_bytes_held") == charge })
	second := dialRaw(t, a)
	second.writeRaw(sizePrefix(1<<20, kmsg.Produce))
	waitFor(t, "the second frame to wait", func() bool { return hits(a, limitQueuedMaxRequestBytes) == 1 })
	dialRaw(t, a).roundTrip(kmsg.NewPtrMetadataRequest(), 12)
	if held := metricValue(t, a, "streamhouse_request_bytes_held"); held != charge {
		t.Fatalf("%v bytes held with one frame charged, want %v", held, charge)
	}
	first.nc.Close()
	waitFor(t, "the second frame to be charged", func() bool {
		return metricValue(t, a, "streamhouse_request_bytes_held") == charge && hits(a, limitQueuedMaxRequestBytes) == 1
	})
}

// A client that stops reading its answers is cut off once a write makes no progress for
// connections.max.idle, as an idle one is: it holds the answers, and their requests' budget, no longer.
func TestUnreadAnswersCutOff(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", withLimits(func(l *Limits) { l.ConnectionsMaxIdle = 300 * time.Millisecond }))
	c := ledTopicConn(t, a, "unread")
	big := strings.Repeat("x", 900<<10)
	for range 4 {
		wantOK(t, "produce", c.produceOne("unread", 0, valueBatch(-1, -1, -1, nil, big)).ErrorCode)
	}
	before := hits(a, limitConnectionsMaxIdle)
	for range 16 { // 16 answers of 3.6 MB: far more than the socket buffers hold
		// On a slow machine the agent may cut the connection off before all 16 are written.
		c.corr++
		c.writeRefused(frameOf(fetchReq("unread", 0, 1, 8<<20, fetchPart{0, 0, 8 << 20}), fetchVersion, c.corr))
	}
	waitFor(t, "the connection to be cut off", func() bool {
		return metricValue(t, a, "streamhouse_kafka_connections") == 0 && hits(a, limitConnectionsMaxIdle) > before
	})
}
