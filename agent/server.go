package agent

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// connReadBuffer is a connection's read buffer: enough for many small requests at once; a large frame
// is read straight into its own buffer, whatever this is. Each open connection holds one, an idle one
// too.
const connReadBuffer = 16 << 10

// maxInFlight bounds the requests one connection may have outstanding. Responses are written in
// request order, as Kafka requires; handlers run concurrently so that one long-polling Fetch does not
// hold up the produce requests pipelined behind it on the same connection.
const maxInFlight = 16

// client describes the connection a request came from.
type client struct {
	id     string // Kafka client id
	remote string
	sec    *connSec // nil: a connection of no listener (tests), as PLAINTEXT
}

// inflight is one request awaiting its response.
type inflight struct {
	corr int32
	done chan struct{}
	resp kmsg.Response // nil: send nothing (acks=0 produce)
	ack  bool          // a produce counted in Agent.acks until its answer is written or dropped
	raw  []byte        // not nil: a bare SASL token to send instead of resp (after a v0 SaslHandshake)
	// charge is what the request is charged to the request budget, released once it is answered.
	charge int64
}

// settle uncounts f's answer once it is written or will never be.
func (a *Agent) settle(f *inflight) {
	if f.ack {
		f.ack = false
		a.acks.done()
	}
}

// ackCount counts produce answers not yet written to their connections. A graceful shutdown waits for
// them before it closes the connections: a produce it committed must also be acknowledged, or the
// client resends it (a duplicate, unless the producer is idempotent); a produce it refused is answered
// with the partition's successor, so that the client moves at once.
type ackCount struct {
	mu    sync.Mutex
	n     int
	moved chan struct{} // closed when n drops; nil when no one waits
}

func (c *ackCount) add() {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
}

func (c *ackCount) done() {
	c.mu.Lock()
	c.n--
	if c.moved != nil {
		close(c.moved)
		c.moved = nil
	}
	c.mu.Unlock()
}

// wait waits until no answer is pending or ctx ends.
func (c *ackCount) wait(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.n == 0 {
			c.mu.Unlock()
			return nil
		}
		if c.moved == nil {
			c.moved = make(chan struct{})
		}
		moved := c.moved
		c.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (f *inflight) finish(resp kmsg.Response) {
	f.resp = resp
	close(f.done)
}

// serveConn reads requests from one connection and writes their responses in order. A malformed
// frame or an API the agent does not serve closes this connection only (as Kafka does), with a log line.
func (a *Agent) serveConn(ctx context.Context, nc net.Conn, l *kafkaListener) {
	ctx, cancel := context.WithCancel(ctx)
	log := a.log.With("client", nc.RemoteAddr().String())
	cs, ok := a.secureConn(ctx, nc, l, log)
	if !ok {
		cancel()
		nc.Close()
		return
	}
	a.metrics.connections.Inc()
	defer a.metrics.connections.Dec()
	queue := make(chan *inflight, maxInFlight)
	act := &connActivity{}
	var handlers, writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		a.writeResponses(ctx, nc, queue, act, log)
		cancel() // a failed write ends the connection
		nc.Close()
	}()
	defer func() {
		cancel()
		nc.Close()
		handlers.Wait()
		close(queue)
		writer.Wait()
		for f := range queue { // answers the writer never reached
			a.settle(f)
		}
	}()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	fr := &frameReader{a: a, nc: nc, r: bufio.NewReaderSize(nc, connReadBuffer), act: act}
	for {
		if handled, ok := a.beforeRead(ctx, fr, cs, queue, log); !ok {
			return
		} else if handled {
			continue
		}
		h, req, charge, ok := a.readRequest(ctx, fr, log)
		if !ok {
			return
		}
		if !a.admitRequest(ctx, cs, req, log) {
			a.budget.release(charge)
			return
		}
		if a.stopping.Load() {
			a.lastRequest.Store(time.Now().UnixNano())
			a.redirected.Add(1)
		}
		f := &inflight{corr: h.Corr, done: make(chan struct{}), charge: charge}
		if _, ok := req.(*kmsg.ProduceRequest); ok {
			// Produce read before a shutdown may hold appends the shutdown commits; produce read during
			// one is refused, naming the successor (awaitSuccessors). Both answers count until written
			// (see ackCount).
			f.ack = true
			a.acks.add()
		}
		select {
		case queue <- f:
		case <-ctx.Done():
			a.budget.release(f.charge)
			a.settle(f)
			return
		}
		act.pending.Add(1)
		a.dispatch(ctx, &handlers, cancel, client{id: h.ClientID, remote: nc.RemoteAddr().String(), sec: cs}, req, f)
	}
}

// readRequest reads and decodes a connection's next request and returns it with what it is charged
// to the request budget (the caller releases it). False ends the connection; why is logged.
func (a *Agent) readRequest(ctx context.Context, fr *frameReader, log hclog.Logger) (kwire.Header, kmsg.Request, int64, bool) {
	fm, err := fr.next(ctx)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), ctx.Err() != nil:
		return kwire.Header{}, nil, 0, false
	case errors.Is(err, errIdle):
		log.Debug("closing idle connection", "error", err)
		return kwire.Header{}, nil, 0, false
	default:
		a.warnBadFrame(log, "closing connection", "error", err)
		return kwire.Header{}, nil, 0, false
	}
	h, req, err := a.parseRequestSafely(fm.body)
	switch {
	case err != nil:
		a.warnBadFrame(log, "closing connection: malformed request", "error", err)
	case req == nil:
		a.warnBadFrame(log, "closing connection: unsupported API or version",
			"api", kmsg.NameForKey(h.Key), "key", h.Key, "version", h.Version)
	default:
		return h, req, a.rechargeDecoded(req, fm), true
	}
	a.budget.release(fm.charge)
	return h, nil, 0, false
}

// writeResponses writes each queued response once it is ready, in queue order. What is written is
// flushed before waiting for an answer that is not ready yet, so that a ready answer (a produce
// acknowledgement) is never held back behind a long-polling fetch pipelined after it.
//
// A write that makes no progress for connections.max.idle ends the connection: a client that stops
// reading its answers holds them, and their requests' budget, no longer than an idle one is kept.
func (a *Agent) writeResponses(ctx context.Context, nc net.Conn, queue <-chan *inflight, act *connActivity, log hclog.Logger) {
	var w *bufio.Writer // made for the first answer: an idle connection holds no write buffer
	deadline := func() { nc.SetWriteDeadline(time.Now().Add(a.cfg.ConnectionsMaxIdle)) }
	var buf []byte
	var unsent []*inflight // taken from the queue, answer not yet flushed
	defer func() {
		for _, f := range unsent {
			a.settle(f) // the connection failed before these answers went out
		}
	}()
	flush := func() bool {
		deadline()
		if err := w.Flush(); err != nil {
			a.writeFailed(ctx, err, log)
			return false
		}
		act.wrote()
		for _, f := range unsent {
			a.settle(f)
			act.pending.Add(-1)
		}
		unsent = unsent[:0]
		return true
	}
	for f := range queue {
		if w == nil {
			w = bufio.NewWriterSize(nc, 64<<10)
		}
		select {
		case <-f.done:
		default:
			// Not ready: send what is written before waiting for it.
			if !flush() {
				a.settle(f)
				return
			}
			select {
			case <-f.done:
			case <-ctx.Done():
				a.settle(f)
				return
			}
		}
		unsent = append(unsent, f)
		if f.raw != nil {
			deadline()
			if _, err := w.Write(appendRawToken(buf[:0], f.raw)); err != nil {
				a.writeFailed(ctx, err, log)
				return
			}
		} else if f.resp != nil {
			if n := responseSizeHint(f.resp); cap(buf) < n {
				buf = getRespBuf(n)
			}
			buf = kwire.AppendResponse(buf[:0], f.corr, f.resp)
			kwire.ReleaseRecords(f.resp)
			deadline()
			if _, err := w.Write(buf); err != nil {
				a.writeFailed(ctx, err, log)
				return
			}
		}
		if len(queue) == 0 && !flush() {
			return
		}
		if cap(buf) > 1<<20 {
			// Do not pin one large fetch response's buffer for the life of the connection: the next
			// large response, on any connection, takes it from the pool.
			putRespBuf(buf)
			buf = nil
		}
	}
}

// writeFailed notes why a connection's answer could not be written; one that made no progress for
// connections.max.idle is counted as that limit's.
func (a *Agent) writeFailed(ctx context.Context, err error, log hclog.Logger) {
	if ctx.Err() != nil {
		return
	}
	if isTimeout(err) {
		a.limitHit(limitConnectionsMaxIdle)
	}
	log.Debug("write failed", "error", err)
}

// respBufs holds the buffers of large responses between uses, so that a fetch response of megabytes
// is written into a buffer of its size at once, not one grown by doubling (which copies it about
// twice more).
var respBufs sync.Pool // of *[]byte

// getRespBuf returns an empty buffer of at least n bytes' capacity.
func getRespBuf(n int) []byte {
	if b, ok := respBufs.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:0]
	}
	return make([]byte, 0, n)
}

func putRespBuf(b []byte) {
	if cap(b) <= maxPooledRespBuf {
		respBufs.Put(&b)
	}
}

// maxPooledRespBuf keeps rare huge responses (a fetch up to its max bytes) out of the pool.
const maxPooledRespBuf = 64 << 20

// responseSizeHint is an upper estimate of resp's encoded size where most of it is record bytes (a
// fetch response), and 0 otherwise.
func responseSizeHint(resp kmsg.Response) int {
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return 0
	}
	const fixed, perTopic, perPartition = 64, 64, 128 // headers, names or ids, offsets, aborted lists
	n := fixed
	for _, t := range fr.Topics {
		n += perTopic + len(t.Topic)
		for _, p := range t.Partitions {
			n += perPartition + len(p.RecordBatches) + 32*len(p.AbortedTransactions)
		}
	}
	return n
}

// dispatch routes one request to its handler. Produce enqueues its batches before dispatch returns, so
// that pipelined produce requests of one connection are sequenced in the order they were sent; every
// handler's wait for its answer runs on its own goroutine. A panic anywhere in a request's handling
// closes its connection only (see recover.go).
func (a *Agent) dispatch(ctx context.Context, wg *sync.WaitGroup, closeConn func(), c client, req kmsg.Request, f *inflight) {
	started := false // the answer is f's handler goroutine's to give
	defer func() {
		if r := recover(); r != nil && !started {
			a.requestPanicked(r, req)
			a.budget.release(f.charge)
			closeConn()
			f.finish(nil)
		}
	}()
	if a.beforeHandle != nil {
		a.beforeHandle(req)
	}
	var wait func() kmsg.Response
	silent := false               // no answer is the answer: an acks=0 produce
	deny, post := a.guard(c, req) // ACLs and quotas (authorize.go)
	switch req := req.(type) {
	case *kmsg.ProduceRequest:
		wait, silent = a.produceAnswer(req, withPost(a.handleProduce(ctx, c, req), post), closeConn), req.Acks == 0
	case *kmsg.SASLHandshakeRequest, *kmsg.SASLAuthenticateRequest:
		resp := a.handleSASL(c, req) // before the next frame is read: it may change what that frame is
		wait = func() kmsg.Response { return resp }
	case kmsg.Request:
		if deny != nil {
			wait = func() kmsg.Response { return deny }
		} else {
			wait = withPost(func() kmsg.Response { return a.handle(ctx, c, req) }, post)
		}
	}
	wg.Add(1)
	started = true
	go func() {
		defer wg.Done()
		var resp kmsg.Response
		defer func() {
			if r := recover(); r != nil {
				a.requestPanicked(r, req)
				resp, silent = nil, false
			}
			a.budget.release(f.charge)
			if resp == nil && !silent {
				closeConn() // the handler could not answer, or the connection is gone already
			}
			f.finish(resp)
		}()
		resp = wait()
	}()
}

// produceAnswer waits for a produce's answer. An acks=0 produce gets no answer at all, and a failed one
// closes the connection instead, as in Kafka, so that the client refreshes its metadata rather than
// write into the void.
func (a *Agent) produceAnswer(p *kmsg.ProduceRequest, wait func() kmsg.Response, closeConn func()) func() kmsg.Response {
	if p.Acks != 0 {
		return wait
	}
	return func() kmsg.Response {
		if r, ok := wait().(*kmsg.ProduceResponse); ok && produceFailed(r) {
			closeConn()
		}
		return nil
	}
}

// handle answers every request but Produce.
func (a *Agent) handle(ctx context.Context, c client, req kmsg.Request) kmsg.Response {
	switch req := req.(type) {
	case *kmsg.FetchRequest:
		return a.handleFetch(ctx, c, req)
	case *kmsg.ListOffsetsRequest:
		return a.handleListOffsets(ctx, c, req)
	case *kmsg.OffsetForLeaderEpochRequest:
		return a.handleOffsetForLeaderEpoch(ctx, req)
	case *kmsg.MetadataRequest:
		return a.handleMetadata(ctx, c, req)
	case *kmsg.ApiVersionsRequest:
		return a.handleApiVersions(req)
	case *kmsg.CreateTopicsRequest:
		return a.handleCreateTopics(ctx, c, req)
	case *kmsg.DeleteTopicsRequest:
		return a.handleDeleteTopics(ctx, c, req)
	case *kmsg.InitProducerIDRequest:
		return a.handleInitProducerID(ctx, c, req)
	case *kmsg.DescribeConfigsRequest:
		return a.handleDescribeConfigs(ctx, c, req)
	case *kmsg.CreatePartitionsRequest:
		return a.handleCreatePartitions(ctx, c, req)
	case *kmsg.IncrementalAlterConfigsRequest:
		return a.handleIncrementalAlterConfigs(ctx, c, req)
	case *kmsg.AlterConfigsRequest:
		return a.handleAlterConfigs(ctx, c, req)
	case *kmsg.DescribeClusterRequest:
		return a.handleDescribeCluster(ctx, c, req)
	case *kmsg.OffsetCommitRequest:
		return a.handleOffsetCommit(ctx, c, req)
	case *kmsg.OffsetFetchRequest:
		return a.handleOffsetFetch(ctx, c, req)
	case *kmsg.FindCoordinatorRequest:
		return a.handleFindCoordinator(ctx, c, req)
	case *kmsg.JoinGroupRequest:
		return a.handleJoinGroup(ctx, c, req)
	case *kmsg.HeartbeatRequest:
		return a.handleHeartbeat(ctx, c, req)
	case *kmsg.LeaveGroupRequest:
		return a.handleLeaveGroup(ctx, c, req)
	case *kmsg.SyncGroupRequest:
		return a.handleSyncGroup(ctx, c, req)
	case *kmsg.DescribeGroupsRequest:
		return a.handleDescribeGroups(ctx, c, req)
	case *kmsg.ListGroupsRequest:
		return a.handleListGroups(ctx, c, req)
	case *kmsg.DeleteGroupsRequest:
		return a.handleDeleteGroups(ctx, c, req)
	case *kmsg.OffsetDeleteRequest:
		return a.handleOffsetDelete(ctx, c, req)
	case *kmsg.DeleteRecordsRequest:
		return a.handleDeleteRecords(ctx, c, req)
	case *kmsg.DescribeProducersRequest:
		return a.handleDescribeProducers(req)
	case *kmsg.AddPartitionsToTxnRequest, *kmsg.AddOffsetsToTxnRequest, *kmsg.EndTxnRequest, *kmsg.TxnOffsetCommitRequest,
		*kmsg.DescribeTransactionsRequest, *kmsg.ListTransactionsRequest:
		return a.handleTxn(ctx, req) // decoded only when served (txn.go)
	}
	if resp, ok := a.handleSecurityAdmin(ctx, c, req); ok {
		return resp
	}
	// kwire.ParseRequest only returns requests listed in apis, and each has a case above; should one be
	// missing, the connection is closed rather than answered wrongly.
	a.log.Error("no handler for a served API", "api", kmsg.NameForKey(req.Key()))
	return nil
}

func produceFailed(r *kmsg.ProduceResponse) bool {
	for _, t := range r.Topics {
		for _, p := range t.Partitions {
			if p.ErrorCode != 0 {
				return true
			}
		}
	}
	return false
}
