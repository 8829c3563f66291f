package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// forwardDialTimeout bounds connecting to a partition leader; forwardTimeout one request's answer.
const (
	forwardDialTimeout = 3 * time.Second
	forwardTimeout     = 30 * time.Second
)

// forwarder sends the sequencing of partitions this agent does not lead to their leaders: one FIFO
// queue and one connection per leader, so that a producer's batches forwarded in successive flushes
// reach the leader in order.
type forwarder struct {
	a       *Agent
	timeout time.Duration // bounds a request's write and its answer: forwardTimeout; shorter in tests

	mu    sync.Mutex
	peers map[string]chan *forwardReq // agent id → its queue
}

type forwardReq struct {
	appends []*pendingAppend
	done    func()
	corr    int32 // its request's correlation id, once sent
	sent    bool  // the whole request was written: the leader may have sequenced it
}

func newForwarder(a *Agent) *forwarder {
	return &forwarder{a: a, timeout: forwardTimeout, peers: map[string]chan *forwardReq{}}
}

// send queues appends for leader's sequencing; done runs once every one of them is answered.
func (f *forwarder) send(ctx context.Context, leader string, appends []*pendingAppend, done func()) {
	f.mu.Lock()
	q, ok := f.peers[leader]
	if !ok {
		q = make(chan *forwardReq, 64)
		f.peers[leader] = q
		f.a.wg.Go(func() { f.runPeer(ctx, leader, q) })
	}
	f.mu.Unlock()
	select {
	case q <- &forwardReq{appends: appends, done: done}:
	case <-ctx.Done():
		fail(appends, errShuttingDown)
		done()
	}
}

// maxForwardsInFlight bounds the sequence requests sent to one leader and not yet answered: the leader
// reads back what each names before it sequences it, and a request need not wait for those reads of
// the one before.
const maxForwardsInFlight = 8

// runPeer sends one leader's requests in order, without waiting for the answers of those before
// (up to maxForwardsInFlight), reconnecting after a failure.
func (f *forwarder) runPeer(ctx context.Context, leader string, q chan *forwardReq) {
	var l *peerLink
	defer func() {
		if l != nil {
			l.close()
		}
	}()
	for {
		var r *forwardReq
		select {
		case r = <-q:
		case <-ctx.Done():
			return
		}
		addr, ok := f.a.agentInternalAddr(leader)
		if l != nil && (l.failed() || l.c.addr != addr) {
			l.close()
			l = nil
		}
		if l == nil {
			var err error
			if l, err = f.connect(ctx, leader, addr, ok); err != nil {
				if ctx.Err() == nil {
					f.a.log.Warn("forwarding to the partition leader failed; producers will retry", "leader", leader, "error", err)
				}
				fail(r.appends, errForwardFailed)
				r.done()
				continue
			}
		}
		l.send(r)
	}
}

// connect opens a link to leader's internal listener at addr (ok: the leader has one).
func (f *forwarder) connect(ctx context.Context, leader, addr string, ok bool) (*peerLink, error) {
	if !ok {
		return nil, fmt.Errorf("leader %s is not registered with an internal address", leader)
	}
	c, err := dialPeer(ctx, addr, f.a.secret, f.a.cfg.ID, f.a.sec.internalClient)
	if err != nil {
		return nil, err
	}
	c.timeout = f.timeout
	l := &peerLink{f: f, leader: leader, c: c, inflight: make(chan *forwardReq, maxForwardsInFlight), broken: make(chan struct{})}
	// Shutting down ends a read or a write under way at once, rather than at its deadline.
	l.stop = context.AfterFunc(ctx, func() { l.fail(ctx.Err()) })
	f.a.wg.Go(l.receive)
	return l, nil
}

// peerLink is a pipelined connection to one leader: send writes requests as they come, receive reads
// the answers in the same order and answers each request's appends. Once either fails, every request
// sent and not answered fails (the producers retry) and runPeer connects again.
//
// How a request fails tells its producer whether it may have been written. One whose whole frame was
// written may have been read and sequenced by the leader: it fails errForwardUnanswered ("maybe
// written", REQUEST_TIMED_OUT). One not written, or written in part (the leader never acts on part of
// a frame, and the connection is closed after any failure), was certainly not: errForwardFailed
// (NOT_LEADER_OR_FOLLOWER), which sends the producer to look for the leader.
type peerLink struct {
	f        *forwarder
	leader   string
	c        *peerConn
	inflight chan *forwardReq // sent, in order, awaiting their answers
	broken   chan struct{}    // closed when the connection failed
	once     sync.Once
	err      error       // why it failed, set before broken is closed
	stop     func() bool // of the context.AfterFunc that fails the link on shutdown
}

// send writes r's request and hands r to receive, which answers it or fails it.
func (l *peerLink) send(r *forwardReq) {
	req := &sequenceRequest{Appends: make([]seqAppend, len(r.appends))}
	for i, p := range r.appends {
		req.Appends[i] = seqAppend{Topic: p.tp.Topic, Partition: p.tp.Partition, Object: p.object,
			Pos: p.extent.Pos, Len: p.extent.Len, CRC: p.extent.CRC, TxnRev: p.txnRev}
	}
	var err error
	if !l.failed() {
		var n int
		r.corr, n, err = l.c.write(req)
		r.sent = err == nil
		l.f.a.countForwardBytes(l.leader, n)
	}
	l.inflight <- r // at most maxForwardsInFlight wait: this waits for the answer of an earlier one
	if err != nil {
		l.fail(err)
	}
}

// receive answers the requests sent, in order, until the link is closed.
func (l *peerLink) receive() {
	for r := range l.inflight {
		if !l.failed() {
			if err := l.answer(r); err != nil {
				l.fail(err)
			}
		}
		if l.failed() {
			if r.sent {
				fail(r.appends, fmt.Errorf("%w: %w", errForwardUnanswered, l.err))
			} else {
				fail(r.appends, fmt.Errorf("%w: %w", errForwardFailed, l.err))
			}
		}
		r.done()
	}
}

// answer reads the answer of r's request and answers its appends from it.
func (l *peerLink) answer(r *forwardReq) error {
	body, err := l.c.read(r.corr)
	l.f.a.countForwardBytes(l.leader, len(body))
	if err != nil {
		return err
	}
	var resp sequenceResponse
	if err := resp.ReadFrom(body); err != nil {
		return fmt.Errorf("decoding the leader's answer: %w", err)
	}
	if len(resp.Results) != len(r.appends) {
		return fmt.Errorf("leader answered %d results for %d appends", len(resp.Results), len(r.appends))
	}
	for i, p := range r.appends {
		res := resp.Results[i]
		if res.Code != 0 {
			p.finish(-1, kerr.ErrorForCode(res.Code))
			continue
		}
		p.finish(res.Base, nil)
	}
	return nil
}

// fail marks the link failed, once: it closes the connection, which ends a read or write under way.
func (l *peerLink) fail(err error) {
	l.once.Do(func() {
		l.err = err
		if l.f.a.runCtx.Err() == nil {
			l.f.a.log.Warn("forwarding to the partition leader failed; producers will retry", "leader", l.leader, "error", err)
		}
		close(l.broken)
		l.c.close()
	})
}

func (l *peerLink) failed() bool {
	select {
	case <-l.broken:
		return true
	default:
		return false
	}
}

// close ends the link: receive fails what is still unanswered.
func (l *peerLink) close() {
	l.stop()
	l.fail(errors.New("link closed"))
	close(l.inflight)
}

func fail(appends []*pendingAppend, err error) {
	for _, p := range appends {
		if !p.res.IsDone() {
			p.finish(-1, err)
		}
	}
}

// peerConn is an authenticated connection to another agent's internal listener, for sequence
// requests.
type peerConn struct {
	addr    string
	nc      net.Conn
	r       *bufio.Reader
	corr    int32
	timeout time.Duration // bounds each write and each read
}

// dialPeer connects to the internal listener at addr, over mTLS with tc (nil: plain TCP), and
// proves, as agent id, the cluster secret.
func dialPeer(ctx context.Context, addr string, secret []byte, id string, tc *tls.Config) (*peerConn, error) {
	d := net.Dialer{Timeout: forwardDialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	if tc != nil {
		if nc, err = internalTLSClient(ctx, nc, addr, tc); err != nil {
			return nil, err
		}
	}
	if err := dialHandshake(nc, secret, id); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	return &peerConn{addr: addr, nc: nc, r: bufio.NewReader(nc), timeout: forwardTimeout}, nil
}

func (c *peerConn) close() { c.nc.Close() }

// roundTrip writes req and reads its answer; it reports the bytes sent.
func (c *peerConn) roundTrip(req kmsg.Request) (int, []byte, error) {
	corr, n, err := c.write(req)
	if err != nil {
		return n, nil, err
	}
	body, err := c.read(corr)
	return n, body, err
}

// write writes req with a Kafka request header and returns its correlation id and the bytes sent.
func (c *peerConn) write(req kmsg.Request) (int32, int, error) {
	c.corr++
	frame := []byte{0, 0, 0, 0}
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.Key()))
	frame = binary.BigEndian.AppendUint16(frame, 0)
	frame = binary.BigEndian.AppendUint32(frame, uint32(c.corr))
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(forwardClientID)))
	frame = append(frame, forwardClientID...)
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.timeout))
	_, err := c.nc.Write(frame)
	return c.corr, len(frame), err
}

// read reads the answer to the request of correlation id corr: the next one on the connection.
func (c *peerConn) read(corr int32) ([]byte, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.timeout))
	body, err := kwire.ReadFrame(c.r, DefaultMaxRequestBytes)
	if err != nil {
		return nil, err
	}
	if got := int32(binary.BigEndian.Uint32(body)); got != corr {
		return nil, fmt.Errorf("answer for request %d, want %d", got, corr)
	}
	return body[4:], nil
}

const forwardClientID = "streamhouse-agent"

// agentAddr is the Kafka address of a registered agent.
func (a *Agent) agentAddr(id string) (string, bool) {
	for _, ag := range a.cache.Agents() {
		if ag.ID == id {
			return ag.Addr, true
		}
	}
	return "", false
}

// agentInternalAddr is the internal address of a registered agent that has one: only such an agent is
// forwarded to (one of an earlier version, registered without it, is not).
func (a *Agent) agentInternalAddr(id string) (string, bool) {
	for _, ag := range a.cache.Agents() {
		if ag.ID == id {
			return ag.Internal, ag.Internal != ""
		}
	}
	return "", false
}

// countForwardBytes counts sequencing metadata sent to and received from leader, when it is in another
// zone.
func (a *Agent) countForwardBytes(leader string, n int) {
	for _, ag := range a.cache.Agents() {
		if ag.ID == leader && ag.AZ != a.cfg.AZ {
			a.metrics.zones.crossZoneBytes.WithLabelValues("metadata").Add(float64(n))
		}
	}
}
