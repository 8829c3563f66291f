package agent

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// standInLeader registers an agent "leader" whose internal listener is at addr, on a session of its
// own, and has it hold the leader key of the only partition of a new topic: a real agent started
// afterwards forwards that partition's sequencing to addr, where the test decides what happens to it.
func standInLeader(t *testing.T, tc *testCluster, topic, addr string) {
	t.Helper()
	cl := tc.client()
	tp, err := cl.CreateTopic(testCtx(t), coord.Topic{Name: topic, Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := cl.Register(testCtx(t), coord.AgentInfo{ID: "leader", Addr: addr, Internal: addr, AZ: "z1", Group: DefaultGroup}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(testCtx(t)) })
	if _, err := s.Acquire(testCtx(t), tp.TP(0), coord.EpochHint{}); err != nil {
		t.Fatal(err)
	}
}

// forwardingAgent starts an agent that forwards topic's sequencing to the stand-in leader, its
// forwards timing out after forwardWait.
func forwardingAgent(t *testing.T, tc *testCluster, topic string, forwardWait time.Duration) (*Agent, *rawConn) {
	t.Helper()
	a := tc.newAgent("a1", func(c *Config) { c.AZ = "z2" })
	a.forwarder.timeout = forwardWait
	startAgent(t, a)
	waitFor(t, "a1 to see the stand-in leader of "+topic, func() bool {
		tp, ok := a.cache.Topic(topic)
		if !ok {
			return false
		}
		_, forward := a.forwardTo(tp.TP(0))
		return forward
	})
	return a, dialRaw(t, a)
}

// readOneRequest accepts one connection on ln, answers the handshake as an agent holding secret
// would, and reads one whole request frame from it.
func readOneRequest(t *testing.T, ln net.Listener, secret []byte) net.Conn {
	t.Helper()
	nc, err := ln.Accept()
	if err != nil {
		t.Error(err)
		return nil
	}
	if _, err := acceptHandshake(nc, secret); err != nil {
		t.Error(err)
		return nc
	}
	r := bufio.NewReader(nc)
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		t.Error(err)
		return nc
	}
	if _, err := io.CopyN(io.Discard, r, int64(binary.BigEndian.Uint32(size[:]))); err != nil {
		t.Error(err)
	}
	return nc
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// A forward the leader read but never answered may have been committed by it: the producer must hear
// "maybe written" (REQUEST_TIMED_OUT), not NOT_LEADER_OR_FOLLOWER, after which a producer that may
// not retry reports as failed a record consumers can read.
func TestForwardUnansweredIsMaybeWritten(t *testing.T) {
	tc := newTestCluster(t)
	ln := listen(t)
	standInLeader(t, tc, "silent", ln.Addr().String())
	a, c := forwardingAgent(t, tc, "silent", 100*time.Millisecond)

	held := make(chan net.Conn, 1)
	go func() { held <- readOneRequest(t, ln, a.secret) }()
	p := c.produceOne("silent", 0, valueBatch(-1, -1, -1, nil, "v"))
	if nc := <-held; nc != nil {
		defer nc.Close()
	}
	wantCode(t, "produce whose forward was read and never answered", p.ErrorCode, kerr.RequestTimedOut)
}

// The same when the leader's connection resets after it read the request.
func TestForwardResetAfterSendIsMaybeWritten(t *testing.T) {
	tc := newTestCluster(t)
	ln := listen(t)
	standInLeader(t, tc, "reset", ln.Addr().String())
	a, c := forwardingAgent(t, tc, "reset", forwardTimeout)

	go func() {
		if nc := readOneRequest(t, ln, a.secret); nc != nil {
			nc.(*net.TCPConn).SetLinger(0) // close with a reset
			nc.Close()
		}
	}()
	p := c.produceOne("reset", 0, valueBatch(-1, -1, -1, nil, "v"))
	wantCode(t, "produce whose forward was reset after it was read", p.ErrorCode, kerr.RequestTimedOut)
}

// A forward that never left this agent (the leader's address refuses connections) was certainly not
// written: NOT_LEADER_OR_FOLLOWER, which sends the producer to look for the leader.
func TestForwardNotSentIsNotLeader(t *testing.T) {
	tc := newTestCluster(t)
	ln := listen(t)
	addr := ln.Addr().String()
	ln.Close()
	standInLeader(t, tc, "refused", addr)
	_, c := forwardingAgent(t, tc, "refused", forwardTimeout)

	p := c.produceOne("refused", 0, valueBatch(-1, -1, -1, nil, "v"))
	wantCode(t, "produce whose forward could not connect", p.ErrorCode, kerr.NotLeaderForPartition)
}
