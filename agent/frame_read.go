package agent

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// Why a connection was closed for a limit (each is counted in streamhouse_limit_hits_total).
var (
	errIdle         = errors.New("agent: connection idle") // connections.max.idle
	errFrameTimeout = errors.New("agent: request frame not received in time")
)

// connActivity is what tells an idle connection from a busy one: requests read and not yet answered
// on the wire, and when an answer was last written.
type connActivity struct {
	pending   atomic.Int64
	lastWrite atomic.Int64 // unix ns
}

func (c *connActivity) wrote() { c.lastWrite.Store(time.Now().UnixNano()) }

// frameReader reads one connection's request frames within the agent's limits.
type frameReader struct {
	a   *Agent
	nc  net.Conn
	r   *bufio.Reader
	act *connActivity
}

// frame is one request frame and what it is charged to the request budget.
type frame struct {
	body   []byte
	charge int64
}

// next reads the next frame. It waits for the frame's first byte as long as the connection is not idle
// (connections.max.idle), then for all of it for at most the frame timeout, its budget included. The
// frame is charged to the request budget before its buffer is allocated; the caller releases the charge.
func (fr *frameReader) next(ctx context.Context) (frame, error) {
	if err := fr.awaitFrame(); err != nil {
		return frame{}, err
	}
	cfg := &fr.a.cfg
	deadline := time.Now().Add(cfg.FrameTimeout)
	fr.nc.SetReadDeadline(deadline)
	n, err := kwire.FrameSize(fr.r, cfg.MaxRequestBytes)
	if err != nil {
		return frame{}, fr.readErr(err)
	}
	keyb, err := fr.r.Peek(2)
	if err != nil {
		return frame{}, fr.readErr(err)
	}
	key := int16(binary.BigEndian.Uint16(keyb))
	charge := kwire.FrameCharge(key, n)
	if charge > fr.a.budget.total {
		fr.a.limitHit(limitDecodeBound)
		return frame{}, fmt.Errorf("%w: a %s request of %d bytes may take %d bytes to decode, more than the whole request budget (--queued-max-request-bytes %d)",
			kwire.ErrFrame, kmsg.NameForKey(key), n, charge, fr.a.budget.total)
	}
	if err := fr.charge(ctx, deadline, charge); err != nil {
		return frame{}, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(fr.r, body); err != nil {
		fr.a.budget.release(charge)
		return frame{}, fr.readErr(err)
	}
	if err := fr.a.checkProduceShape(body); err != nil {
		fr.a.budget.release(charge)
		return frame{}, err
	}
	return frame{body: body, charge: charge}, nil
}

// awaitFrame waits for a frame's first byte: for as long as the connection has requests in flight or
// answers going out, and up to connections.max.idle after its last activity otherwise.
func (fr *frameReader) awaitFrame() error {
	idle := fr.a.cfg.ConnectionsMaxIdle
	since := time.Now()
	for {
		fr.nc.SetReadDeadline(since.Add(idle))
		_, err := fr.r.Peek(1)
		switch {
		case err == nil:
			return nil
		case !isTimeout(err):
			return err
		case fr.act.pending.Load() > 0:
			since = time.Now()
		default:
			if last := time.Unix(0, fr.act.lastWrite.Load()); last.After(since) {
				since = last
				continue
			}
			fr.a.limitHit(limitConnectionsMaxIdle)
			return fmt.Errorf("%w for %v", errIdle, idle)
		}
	}
}

// charge charges a frame to the request budget, waiting until the frame's deadline for room.
func (fr *frameReader) charge(ctx context.Context, deadline time.Time, n int64) error {
	bctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err := fr.a.budget.acquire(bctx, n, func() { fr.a.limitHit(limitQueuedMaxRequestBytes) })
	if err != nil && ctx.Err() == nil {
		fr.a.limitHit(limitFrameTimeout)
		return fmt.Errorf("%w: no room in the request budget (--queued-max-request-bytes) within %v", errFrameTimeout, fr.a.cfg.FrameTimeout)
	}
	return err
}

func (fr *frameReader) readErr(err error) error {
	if isTimeout(err) {
		fr.a.limitHit(limitFrameTimeout)
		return fmt.Errorf("%w within %v", errFrameTimeout, fr.a.cfg.FrameTimeout)
	}
	return err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkProduceShape refuses a Produce frame whose decoded structures would outweigh it (see
// kwire.ProduceShape) before it is decoded.
func (a *Agent) checkProduceShape(body []byte) error {
	key, version := int16(binary.BigEndian.Uint16(body)), int16(binary.BigEndian.Uint16(body[2:]))
	if key != int16(kmsg.Produce) || !supported(key, version) {
		return nil
	}
	cost, err := kwire.ProduceShape(body, version)
	if err != nil {
		return fmt.Errorf("%w: %w", kwire.ErrFrame, err)
	}
	if bound := kwire.ProduceDecodeBound(len(body)); int64(cost) > bound {
		a.limitHit(limitDecodeBound)
		return fmt.Errorf("%w: a produce request of %d bytes would take %d bytes to decode (more than %d)",
			kwire.ErrFrame, len(body), cost, bound)
	}
	return nil
}

// rechargeDecoded lowers a decoded Fetch's charge from what decoding it might have allocated to what
// it holds: a fetch may long-poll for --fetch-max-wait, and the fetches of many consumers at once would
// otherwise be charged many times what they hold. Every other request keeps its charge until answered:
// it is soon answered, or small (JoinGroup, SyncGroup).
func (a *Agent) rechargeDecoded(req kmsg.Request, fm frame) int64 {
	fetch, ok := req.(*kmsg.FetchRequest)
	if !ok {
		return fm.charge
	}
	held := int64(len(fm.body)) + fetchDecodedBytes(fetch) // the frame too: tagged fields point into it
	if held >= fm.charge {
		return fm.charge
	}
	a.budget.release(fm.charge - held)
	return held
}

// fetchDecodedBytes is what a decoded fetch request holds besides its frame.
func fetchDecodedBytes(r *kmsg.FetchRequest) int64 {
	n := int64(unsafe.Sizeof(*r)) + int64(len(r.Rack)) + tagBytes(&r.UnknownTags)
	if r.ClusterID != nil {
		n += int64(len(*r.ClusterID)) + 16
	}
	n += int64(cap(r.Topics)) * int64(unsafe.Sizeof(kmsg.FetchRequestTopic{}))
	for i := range r.Topics {
		t := &r.Topics[i]
		n += int64(len(t.Topic)) + tagBytes(&t.UnknownTags)
		n += int64(cap(t.Partitions)) * int64(unsafe.Sizeof(kmsg.FetchRequestTopicPartition{}))
		for j := range t.Partitions {
			n += tagBytes(&t.Partitions[j].UnknownTags)
		}
	}
	n += int64(cap(r.ForgottenTopics)) * int64(unsafe.Sizeof(kmsg.FetchRequestForgottenTopic{}))
	for i := range r.ForgottenTopics {
		t := &r.ForgottenTopics[i]
		n += int64(len(t.Topic)) + 4*int64(cap(t.Partitions)) + tagBytes(&t.UnknownTags)
	}
	return n
}

// tagBytes is what decoding an element's unknown tagged fields allocated.
func tagBytes(t *kmsg.Tags) int64 {
	if t.Len() == 0 {
		return 0
	}
	return kwire.TagMapBytes + int64(t.Len())*kwire.TagEntryBytes
}
