package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// The marker API: a transaction coordinator has the leader of each of a transaction's partitions
// write its marker (docs/INTERNALS.md, "Markers"). Served, like the sequence API, only on the
// internal listener to agents that proved the cluster secret, in the same pipeline (a connection's
// requests are answered in order), with a Kafka request header, an API key outside Kafka's range
// and a JSON body.
const (
	apiKeyMarkers     = 32701
	maxMarkerRequests = 10000 // partitions in one request
)

type markerTP struct {
	Topic     coord.TopicID `json:"topic"`
	Partition int32         `json:"partition"`
}

// markerRequest is one transaction's markers for partitions the receiver leads.
type markerRequest struct {
	NS         string     `json:"ns"`
	ID         string     `json:"id"`
	Version    int64      `json:"version"` // the Prepare write's revision
	ProducerID int64      `json:"pid"`
	Epoch      int16      `json:"epoch"`
	Commit     bool       `json:"commit"`
	Partitions []markerTP `json:"partitions"`
}

func (*markerRequest) Key() int16                   { return apiKeyMarkers }
func (*markerRequest) MaxVersion() int16            { return 0 }
func (*markerRequest) SetVersion(int16)             {}
func (*markerRequest) GetVersion() int16            { return 0 }
func (*markerRequest) IsFlexible() bool             { return false }
func (*markerRequest) ResponseKind() kmsg.Response  { return &markerResponse{} }
func (r *markerRequest) AppendTo(dst []byte) []byte { return appendJSON(dst, r) }

// ReadFrom decodes and validates a request.
func (r *markerRequest) ReadFrom(b []byte) error {
	if err := json.Unmarshal(b, r); err != nil {
		return err
	}
	switch {
	case len(r.Partitions) == 0 || len(r.Partitions) > maxMarkerRequests:
		return fmt.Errorf("%d partitions, want 1..%d", len(r.Partitions), maxMarkerRequests)
	case r.NS == "" || r.Version <= 0 || r.ProducerID < 0 || r.Epoch < 0:
		return fmt.Errorf("invalid marker request for %q", r.ID)
	}
	for _, p := range r.Partitions {
		if p.Partition < 0 {
			return fmt.Errorf("invalid partition %d", p.Partition)
		}
	}
	return nil
}

// work is the request as the sequencer takes it.
func (r *markerRequest) work() *markerWork {
	w := &markerWork{guard: coord.TxnGuard{NS: r.NS, ID: r.ID, Version: r.Version},
		marker: coord.TxnMarker{ProducerID: r.ProducerID, Epoch: r.Epoch, Commit: r.Commit}}
	for _, p := range r.Partitions {
		w.tps = append(w.tps, coord.TP{Topic: p.Topic, Partition: p.Partition})
	}
	w.errs = make([]error, len(w.tps))
	return w
}

type markerResult struct {
	Code    int16 `json:"code"`
	Changed bool  `json:"changed,omitempty"` // the transaction's key moved past the Prepare write
}

type markerResponse struct {
	Results []markerResult `json:"results"`
}

func (*markerResponse) Key() int16                   { return apiKeyMarkers }
func (*markerResponse) MaxVersion() int16            { return 0 }
func (*markerResponse) SetVersion(int16)             {}
func (*markerResponse) GetVersion() int16            { return 0 }
func (*markerResponse) IsFlexible() bool             { return false }
func (*markerResponse) RequestKind() kmsg.Request    { return &markerRequest{} }
func (r *markerResponse) AppendTo(dst []byte) []byte { return appendJSON(dst, r) }
func (r *markerResponse) ReadFrom(b []byte) error    { return json.Unmarshal(b, r) }

// parseInternalRequest parses an internal listener's request frame: a sequence request or a marker
// request.
func parseInternalRequest(body []byte) (corr int32, seq *sequenceRequest, mk *markerRequest, err error) {
	rd := kbin.Reader{Src: body}
	key, version, corr := rd.Int16(), rd.Int16(), rd.Int32()
	rd.NullableString() // client id
	if err := rd.Complete(); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: header: %v", kwire.ErrFrame, err)
	}
	if key != apiKeyMarkers || version != 0 {
		corr, seq, err = parseSequenceRequest(body)
		return corr, seq, nil, err
	}
	mk = &markerRequest{}
	if err := mk.ReadFrom(rd.Src); err != nil {
		return 0, nil, nil, fmt.Errorf("%w: marker request: %v", kwire.ErrFrame, err)
	}
	return corr, nil, mk, nil
}

// queueMarkers queues w for the sequencer; the returned work's done is closed once it is written.
func (a *Agent) queueMarkers(ctx context.Context, w *markerWork) (*remoteWork, error) {
	rw := &remoteWork{markers: w, done: make(chan struct{})}
	select {
	case a.remote <- rw:
		return rw, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answerMarkers waits until rw is written and answers it; nil when ctx ends first.
func answerMarkers(ctx context.Context, rw *remoteWork) *markerResponse {
	if !waitClosed(ctx, rw.done) {
		return nil
	}
	resp := &markerResponse{Results: make([]markerResult, len(rw.markers.errs))}
	for i, err := range rw.markers.errs {
		resp.Results[i] = markerResult{Code: kafkaCode(err), Changed: errors.Is(err, coord.ErrTxnChanged)}
	}
	return resp
}

// writeRemoteMarkers has agent leader write w's markers, on a connection of its own to leader's
// internal listener, and returns the first error.
func (a *Agent) writeRemoteMarkers(ctx context.Context, leader string, w *markerWork) error {
	addr, ok := a.agentInternalAddr(leader)
	if !ok {
		return fmt.Errorf("%w: agent %s has no internal listener", errMarkerNotLed, leader)
	}
	c, err := dialPeer(ctx, addr, a.secret, a.cfg.ID, a.sec.internalClient)
	if err != nil {
		return fmt.Errorf("agent: markers to %s: %w", leader, err)
	}
	defer c.close()
	req := &markerRequest{NS: w.guard.NS, ID: w.guard.ID, Version: w.guard.Version, ProducerID: w.marker.ProducerID,
		Epoch: w.marker.Epoch, Commit: w.marker.Commit}
	for _, tp := range w.tps {
		req.Partitions = append(req.Partitions, markerTP{Topic: tp.Topic, Partition: tp.Partition})
	}
	_, body, err := c.roundTrip(req)
	if err != nil {
		return fmt.Errorf("agent: markers to %s: %w", leader, err)
	}
	var resp markerResponse
	if err := resp.ReadFrom(body); err != nil || len(resp.Results) != len(w.tps) {
		return fmt.Errorf("agent: markers to %s: a malformed answer (%v)", leader, err)
	}
	var errs []error
	for i, r := range resp.Results {
		switch {
		case r.Changed:
			errs = append(errs, fmt.Errorf("%w: marker of %s at %s", coord.ErrTxnChanged, w.tps[i], leader))
		case r.Code != 0:
			errs = append(errs, fmt.Errorf("agent: marker of %s at %s: %w", w.tps[i], leader, kerr.ErrorForCode(r.Code)))
		}
	}
	return errors.Join(errs...)
}
