package agent

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// The internal listener is where other agents have this one sequence for them (the sequence API,
// sequence_api.go): the one request that makes bytes visible without passing through Produce's
// validation here, so it is served only to agents that prove the cluster secret (internal_auth.go),
// and never on the Kafka listener. docs/INTERNALS.md has the design.

// listenInternal binds the internal listener, when there is one, and works out the address peers
// are told.
func (a *Agent) listenInternal() error {
	if a.cfg.InternalAddr == "" {
		return nil
	}
	if err := a.internalTLS(); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", a.cfg.InternalAddr)
	if err != nil {
		return fmt.Errorf("agent: internal listener: %w", err)
	}
	a.internalAdvertised = advertisedInternal(ln.Addr().String(), a.cfg.AdvertisedAddr)
	if a.sec.internalServer != nil {
		ln = tls.NewListener(ln, a.sec.internalServer)
	}
	a.internalLn = ln
	return nil
}

// advertisedInternal is the internal address peers dial: the bound one, unless it is every interface
// (0.0.0.0, ::), which peers cannot dial; then the advertised Kafka host with the bound port.
func advertisedInternal(bound, advertised string) string {
	host, port, err := net.SplitHostPort(bound)
	if err != nil {
		return bound
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
		return bound
	}
	if ahost, _, err := net.SplitHostPort(advertised); err == nil && ahost != "" {
		return net.JoinHostPort(ahost, port)
	}
	return bound
}

// InternalAddr is the bound internal listener address (valid after Start; empty when there is none).
func (a *Agent) InternalAddr() string {
	if a.internalLn == nil {
		return ""
	}
	return a.internalLn.Addr().String()
}

// Accept errors (out of file descriptors, say) are retried after a pause that doubles up to a
// second, as net/http does, rather than ending the listener.
const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

// serveInternal accepts agents' connections until ctx is cancelled.
func (a *Agent) serveInternal(ctx context.Context, ln net.Listener) {
	var conns sync.WaitGroup
	defer conns.Wait()
	var pause time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			pause = min(max(2*pause, acceptRetryMin), acceptRetryMax)
			a.log.Warn("internal listener: accept failed; retrying", "error", err, "in", pause)
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return
			}
			continue
		}
		pause = 0
		conns.Go(func() { a.serveInternalConn(ctx, nc) })
	}
}

// serveInternalConn authenticates an agent's connection and serves its sequence requests.
func (a *Agent) serveInternalConn(ctx context.Context, nc net.Conn) {
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()
	log := a.log.With("peer", nc.RemoteAddr().String())
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	peer, err := acceptHandshake(nc, a.secret)
	if err != nil {
		if ctx.Err() == nil {
			a.metrics.trust.authFailures.Inc()
			log.Warn("internal listener: connection refused", "error", err)
		}
		return
	}
	_ = nc.SetDeadline(time.Time{})
	a.metrics.trust.internalConns.Inc()
	defer a.metrics.trust.internalConns.Dec()
	a.serveSequences(ctx, nc, peer, log.With("agent", peer))
}

// maxSequencesInFlight bounds the requests of one agent being checked or sequenced at once.
const maxSequencesInFlight = 8

// seqCall is one sequence request on its way through serveSequences.
type seqCall struct {
	corr    int32
	appends []*pendingAppend // set once checked
	markers *markerWork      // instead of appends: a marker request (txn_marker_api.go)
	checked chan struct{}
	work    *remoteWork // set once queued
}

// serveSequences serves agent peer's sequence requests on nc as a pipeline, so that the reads that
// check one request overlap with those of the next and with the sequencing of the one before: the
// requests are read and checked concurrently (checkForwarded), queued for the sequencer strictly in
// the order they arrived, and answered in that order.
func (a *Agent) serveSequences(ctx context.Context, nc net.Conn, peer string, log hclog.Logger) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { nc.Close() }) // ends the read below
	defer stop()
	checking, answering := make(chan *seqCall, maxSequencesInFlight), make(chan *seqCall, maxSequencesInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		defer close(answering)
		for c := range checking {
			if !waitClosed(ctx, c.checked) {
				continue
			}
			queue := func() (*remoteWork, error) { return a.queueSequence(ctx, c.appends) }
			if c.markers != nil {
				queue = func() (*remoteWork, error) { return a.queueMarkers(ctx, c.markers) }
			}
			w, err := queue()
			if err != nil {
				continue
			}
			c.work = w
			select {
			case answering <- c:
			case <-ctx.Done():
			}
		}
	})
	wg.Go(func() {
		defer cancel() // a failed answer ends the connection
		for c := range answering {
			var resp kmsg.Response
			if c.markers != nil {
				if r := answerMarkers(ctx, c.work); r != nil {
					resp = r
				}
			} else if r := answerSequence(ctx, c.appends, c.work); r != nil {
				resp = r
			}
			if resp == nil {
				return
			}
			if _, err := nc.Write(kwire.AppendResponse(nil, c.corr, resp)); err != nil {
				return
			}
		}
	})
	defer close(checking)
	r := bufio.NewReaderSize(nc, 64<<10)
	for {
		body, err := kwire.ReadFrame(r, a.cfg.MaxRequestBytes)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && ctx.Err() == nil {
				log.Warn("internal listener: closing connection", "error", err)
			}
			return
		}
		corr, req, mreq, err := parseInternalRequest(body)
		if err != nil {
			log.Warn("internal listener: closing connection: malformed request", "error", err)
			return
		}
		if mreq != nil && a.txns == nil {
			log.Warn("internal listener: closing connection: marker request while transactions are not served")
			return
		}
		c := &seqCall{corr: corr, checked: make(chan struct{})}
		if mreq != nil {
			c.markers = mreq.work()
			close(c.checked)
		}
		select {
		case checking <- c:
		case <-ctx.Done():
			return
		}
		if mreq != nil {
			continue
		}
		wg.Go(func() {
			c.appends = a.checkForwarded(ctx, peer, req.Appends)
			close(c.checked)
		})
	}
}

// waitClosed waits for ch to close; false when ctx ends first.
func waitClosed(ctx context.Context, ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
