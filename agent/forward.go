package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
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
	timeout time.Duration // forwardTimeout; shorter in tests

	mu    sync.Mutex
	peers map[string]chan *forwardReq // agent id → its queue
}

type forwardReq struct {
	appends []*pendingAppend
	done    func()
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
		f.a.goRun(func() { f.runPeer(ctx, leader, q) })
	}
	f.mu.Unlock()
	select {
	case q <- &forwardReq{appends: appends, done: done}:
	case <-ctx.Done():
		fail(appends, errShuttingDown)
		done()
	}
}

// runPeer sends one leader's requests in order, one at a time, reconnecting after a failure.
func (f *forwarder) runPeer(ctx context.Context, leader string, q chan *forwardReq) {
	var c *peerConn
	defer func() {
		if c != nil {
			c.close()
		}
	}()
	for {
		var r *forwardReq
		select {
		case r = <-q:
		case <-ctx.Done():
			return
		}
		err := func() error {
			addr, ok := f.a.agentAddr(leader)
			if !ok {
				return fmt.Errorf("leader %s is not registered", leader)
			}
			if c != nil && c.addr != addr {
				c.close()
				c = nil
			}
			if c == nil {
				var err error
				if c, err = dialPeer(ctx, addr); err != nil {
					return err
				}
			}
			return f.roundTrip(c, leader, r.appends)
		}()
		if err != nil {
			if ctx.Err() == nil {
				f.a.log.Warn("forwarding to the partition leader failed; producers will retry", "leader", leader, "error", err)
			}
			if c != nil {
				c.close()
				c = nil
			}
			if !errors.Is(err, errForwardUnanswered) {
				err = fmt.Errorf("%w: %w", errForwardFailed, err)
			}
			fail(r.appends, err)
		}
		r.done()
	}
}

// roundTrip sends one sequence request and answers its appends from the leader's response.
func (f *forwarder) roundTrip(c *peerConn, leader string, appends []*pendingAppend) error {
	req := &sequenceRequest{Appends: make([]seqAppend, len(appends))}
	for i, p := range appends {
		m := p.meta
		req.Appends[i] = seqAppend{Topic: p.tp.Topic, Partition: p.tp.Partition, Object: p.object,
			Pos: p.extent.Pos, Len: p.extent.Len, CRC: p.extent.CRC, Records: m.records, MaxTimestamp: m.maxTimestamp,
			ProducerID: m.producerID, ProducerEpoch: m.producerEpoch, BaseSequence: m.baseSequence}
	}
	sent, body, err := c.roundTrip(req, f.timeout)
	f.a.countForwardBytes(leader, sent+len(body))
	if err != nil {
		return err
	}
	var resp sequenceResponse
	if err := resp.ReadFrom(body); err != nil {
		return fmt.Errorf("%w: decoding the leader's answer: %w", errForwardUnanswered, err)
	}
	if len(resp.Results) != len(appends) {
		return fmt.Errorf("%w: leader answered %d results for %d appends", errForwardUnanswered, len(resp.Results), len(appends))
	}
	for i, p := range appends {
		res := resp.Results[i]
		if res.Code != 0 {
			p.finish(-1, kerr.ErrorForCode(res.Code))
			continue
		}
		p.finish(res.Base, nil)
	}
	return nil
}

func fail(appends []*pendingAppend, err error) {
	for _, p := range appends {
		select {
		case <-p.done:
		default:
			p.finish(-1, err)
		}
	}
}

// peerConn is a connection to another agent's Kafka listener, for sequence requests.
type peerConn struct {
	addr string
	nc   net.Conn
	r    *bufio.Reader
	corr int32
}

func dialPeer(ctx context.Context, addr string) (*peerConn, error) {
	d := net.Dialer{Timeout: forwardDialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &peerConn{addr: addr, nc: nc, r: bufio.NewReader(nc)}, nil
}

func (c *peerConn) close() { c.nc.Close() }

// roundTrip writes req with a Kafka request header and reads its response body; it reports the bytes
// sent. A failure once the whole request is written wraps errForwardUnanswered: the leader may have
// read and committed it. A failed write leaves the leader at most part of a frame, which it never
// acts on (the connection is closed after any failure), so the request was not sent.
func (c *peerConn) roundTrip(req *sequenceRequest, timeout time.Duration) (int, []byte, error) {
	c.corr++
	frame := []byte{0, 0, 0, 0}
	frame = binary.BigEndian.AppendUint16(frame, uint16(req.Key()))
	frame = binary.BigEndian.AppendUint16(frame, 0)
	frame = binary.BigEndian.AppendUint32(frame, uint32(c.corr))
	frame = binary.BigEndian.AppendUint16(frame, uint16(len(forwardClientID)))
	frame = append(frame, forwardClientID...)
	frame = req.AppendTo(frame)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	c.nc.SetDeadline(time.Now().Add(timeout))
	if _, err := c.nc.Write(frame); err != nil {
		return len(frame), nil, err
	}
	body, err := readFrame(c.r, DefaultMaxRequestBytes)
	if err != nil {
		return len(frame), nil, fmt.Errorf("%w: %w", errForwardUnanswered, err)
	}
	if corr := int32(binary.BigEndian.Uint32(body)); corr != c.corr {
		return len(frame), nil, fmt.Errorf("%w: answer for request %d, want %d", errForwardUnanswered, corr, c.corr)
	}
	return len(frame), body[4:], nil
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

// countForwardBytes counts sequencing metadata sent to and received from leader, when it is in another
// zone.
func (a *Agent) countForwardBytes(leader string, n int) {
	for _, ag := range a.cache.Agents() {
		if ag.ID == leader && ag.AZ != a.cfg.AZ {
			a.metrics.zones.crossZoneBytes.WithLabelValues("metadata").Add(float64(n))
		}
	}
}
