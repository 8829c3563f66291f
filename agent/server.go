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
)

// maxInFlight bounds the requests one connection may have outstanding. Responses are written in
// request order, as Kafka requires; handlers run concurrently so that one long-polling Fetch does not
// hold up the produce requests pipelined behind it on the same connection.
const maxInFlight = 16

// client describes the connection a request came from.
type client struct {
	id     string // Kafka client id
	remote string
}

// inflight is one request awaiting its response.
type inflight struct {
	corr int32
	done chan struct{}
	resp kmsg.Response // nil: send nothing (acks=0 produce)
	ack  bool          // a produce counted in Agent.acks until its answer is written or dropped
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

// serveKafka accepts Kafka connections until ctx is cancelled.
func (a *Agent) serveKafka(ctx context.Context, ln net.Listener) {
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				a.log.Error("kafka listener failed", "error", err)
			}
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			a.serveConn(ctx, nc)
		}()
	}
}

// serveConn reads requests from one connection and writes their responses in order. A malformed
// frame or an API the agent does not serve closes this connection only (as Kafka does), with a log line.
func (a *Agent) serveConn(ctx context.Context, nc net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	log := a.log.With("client", nc.RemoteAddr().String())
	a.metrics.connections.Inc()
	defer a.metrics.connections.Dec()
	queue := make(chan *inflight, maxInFlight)
	var handlers, writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		a.writeResponses(ctx, nc, queue, log)
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

	r := bufio.NewReaderSize(nc, 64<<10)
	for {
		body, err := readFrame(r, a.cfg.MaxRequestBytes)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				log.Warn("closing connection", "error", err)
			}
			return
		}
		h, req, err := parseRequest(body)
		if err != nil {
			log.Warn("closing connection: malformed request", "error", err)
			return
		}
		if req == nil {
			log.Warn("closing connection: unsupported API or version",
				"api", kmsg.NameForKey(h.key), "key", h.key, "version", h.version)
			return
		}
		if a.stopping.Load() {
			a.lastRequest.Store(time.Now().UnixNano())
			a.redirected.Add(1)
		}
		f := &inflight{corr: h.corr, done: make(chan struct{})}
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
			a.settle(f)
			return
		}
		a.dispatch(ctx, &handlers, cancel, client{id: h.clientID, remote: nc.RemoteAddr().String()}, req, f)
	}
}

// writeResponses writes each queued response once it is ready, in queue order. What is written is
// flushed before waiting for an answer that is not ready yet, so that a ready answer (a produce
// acknowledgement) is never held back behind a long-polling fetch pipelined after it.
func (a *Agent) writeResponses(ctx context.Context, nc net.Conn, queue <-chan *inflight, log hclog.Logger) {
	w := bufio.NewWriterSize(nc, 64<<10)
	var buf []byte
	var unsent []*inflight // taken from the queue, answer not yet flushed
	defer func() {
		for _, f := range unsent {
			a.settle(f) // the connection failed before these answers went out
		}
	}()
	flush := func() bool {
		if err := w.Flush(); err != nil {
			if ctx.Err() == nil {
				log.Debug("write failed", "error", err)
			}
			return false
		}
		for _, f := range unsent {
			a.settle(f)
		}
		unsent = unsent[:0]
		return true
	}
	for f := range queue {
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
		if f.resp != nil {
			if n := responseSizeHint(f.resp); cap(buf) < n {
				buf = getRespBuf(n)
			}
			buf = appendResponse(buf[:0], f.corr, f.resp)
			releaseRecords(f.resp)
			if _, err := w.Write(buf); err != nil {
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
// handler's wait for its answer runs on its own goroutine.
func (a *Agent) dispatch(ctx context.Context, wg *sync.WaitGroup, closeConn func(), c client, req kmsg.Request, f *inflight) {
	if p, ok := req.(*kmsg.ProduceRequest); ok {
		wait := a.handleProduce(ctx, c, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := wait()
			if p.Acks == 0 {
				// No answer at all; a failed acks=0 produce closes the connection instead, as in
				// Kafka, so that the client refreshes its metadata rather than write into the void.
				if r, ok := resp.(*kmsg.ProduceResponse); ok && produceFailed(r) {
					closeConn()
				}
				resp = nil
			}
			f.finish(resp)
		}()
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp := a.handle(ctx, c, req)
		if resp == nil {
			closeConn()
		}
		f.finish(resp)
	}()
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
	}
	// parseRequest only returns requests listed in apis, and each has a case above; should one be
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
