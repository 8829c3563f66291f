package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// The sequence API is how an agent that wrote a produce's bytes into its own flush object (say, an
// agent in the producer's zone) has the partition's leader sequence them: it names the partition and
// the extent (object, position, length, CRC); the leader reads and validates the extent (its record
// count, producer and timestamps come from the bytes, never from the request), checks sequences,
// assigns offsets, commits with its fenced Txn and answers the base offsets. It is served only on the
// internal listener, to agents that proved the cluster secret (internal.go), with a Kafka request
// header and an API key outside Kafka's range, and a JSON body.
const (
	apiKeySequence     = 32700
	maxSequenceAppends = 10000
)

// seqAppend is one forwarded batch: where the caller wrote it.
type seqAppend struct {
	Topic     coord.TopicID `json:"topic"`
	Partition int32         `json:"partition"`
	Object    string        `json:"object"`
	Pos       int64         `json:"pos"`
	Len       int32         `json:"len"`
	CRC       uint32        `json:"crc"`
	// TxnRev: a transactional batch's verification (txn_produce.go); absent otherwise.
	TxnRev int64 `json:"txnRev,omitempty"`
}

type seqResult struct {
	Base int64 `json:"base"`
	Code int16 `json:"code"`
}

// sequenceRequest is the sequence API's request as a kmsg.Request, so that it is framed as Kafka
// requests are.
type sequenceRequest struct {
	Appends []seqAppend `json:"appends"`
}

func (*sequenceRequest) Key() int16                   { return apiKeySequence }
func (*sequenceRequest) MaxVersion() int16            { return 0 }
func (*sequenceRequest) SetVersion(int16)             {}
func (*sequenceRequest) GetVersion() int16            { return 0 }
func (*sequenceRequest) IsFlexible() bool             { return false }
func (*sequenceRequest) ResponseKind() kmsg.Response  { return &sequenceResponse{} }
func (r *sequenceRequest) AppendTo(dst []byte) []byte { return appendJSON(dst, r) }

// ReadFrom decodes and validates a request: nothing from the network reaches the sequencer unchecked.
func (r *sequenceRequest) ReadFrom(b []byte) error {
	if err := json.Unmarshal(b, r); err != nil {
		return err
	}
	if len(r.Appends) == 0 || len(r.Appends) > maxSequenceAppends {
		return fmt.Errorf("%d appends, want 1..%d", len(r.Appends), maxSequenceAppends)
	}
	for _, x := range r.Appends {
		if x.Partition < 0 || x.Object == "" || x.Pos < 0 || x.Len < kwire.BatchHeaderLen || x.Pos > math.MaxInt64-int64(x.Len) {
			return fmt.Errorf("invalid append %+v", x)
		}
	}
	return nil
}

// parseSequenceRequest parses an internal listener's request frame: a sequence request, the one API
// it serves.
func parseSequenceRequest(body []byte) (corr int32, req *sequenceRequest, err error) {
	rd := kbin.Reader{Src: body}
	key, version, corr := rd.Int16(), rd.Int16(), rd.Int32()
	rd.NullableString() // client id
	if err := rd.Complete(); err != nil {
		return 0, nil, fmt.Errorf("%w: header: %v", kwire.ErrFrame, err)
	}
	if key != apiKeySequence || version != 0 {
		return 0, nil, fmt.Errorf("%w: API key %d v%d on the internal listener", kwire.ErrFrame, key, version)
	}
	req = &sequenceRequest{}
	if err := req.ReadFrom(rd.Src); err != nil {
		return 0, nil, fmt.Errorf("%w: sequence request: %v", kwire.ErrFrame, err)
	}
	return corr, req, nil
}

type sequenceResponse struct {
	Results []seqResult `json:"results"`
}

func (*sequenceResponse) Key() int16                   { return apiKeySequence }
func (*sequenceResponse) MaxVersion() int16            { return 0 }
func (*sequenceResponse) SetVersion(int16)             {}
func (*sequenceResponse) GetVersion() int16            { return 0 }
func (*sequenceResponse) IsFlexible() bool             { return false }
func (*sequenceResponse) RequestKind() kmsg.Request    { return &sequenceRequest{} }
func (r *sequenceResponse) AppendTo(dst []byte) []byte { return appendJSON(dst, r) }
func (r *sequenceResponse) ReadFrom(b []byte) error    { return json.Unmarshal(b, r) }

func appendJSON(dst []byte, v any) []byte {
	b, _ := json.Marshal(v) // plain structs of numbers and strings: cannot fail
	return append(dst, b...)
}

// remoteWork is one forwarded request, queued for the sequencer in arrival order.
type remoteWork struct {
	appends []*pendingAppend
	markers *markerWork // instead of appends: a transaction's markers (txn_markers.go)
	done    chan struct{}
}

// queueSequence queues for the sequencer the appends that passed checkForwarded, in arrival order
// (an agent's requests are sequenced in the order it sent them); those refused are answered already.
// The returned work's done is closed once the sequencer has answered them all.
func (a *Agent) queueSequence(ctx context.Context, appends []*pendingAppend) (*remoteWork, error) {
	var queued []*pendingAppend
	for _, p := range appends {
		if !p.res.IsDone() { // refused by checkForwarded
			queued = append(queued, p)
		}
	}
	w := &remoteWork{appends: queued, done: make(chan struct{})}
	if len(queued) == 0 {
		close(w.done)
		return w, nil
	}
	sort.SliceStable(queued, func(i, j int) bool { return tpLess(queued[i].tp, queued[j].tp) })
	select {
	case a.remote <- w:
		return w, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// answerSequence waits until w is sequenced and answers each of appends; nil when ctx ends first.
func answerSequence(ctx context.Context, appends []*pendingAppend, w *remoteWork) *sequenceResponse {
	select {
	case <-w.done:
	case <-ctx.Done():
		return nil
	}
	resp := &sequenceResponse{Results: make([]seqResult, len(appends))}
	for i, p := range appends {
		base, err := p.res.Wait(context.Background()) // w is done: every queued append is answered
		resp.Results[i] = seqResult{Base: base, Code: kafkaCode(err)}
	}
	return resp
}

// Forwarding failures. errForwardFailed: the request never reached the leader (not registered, no
// connection, the write failed): not written, the client looks for the leader and retries.
// errForwardUnanswered: the request was sent but no usable answer came back (timeout, reset, a
// malformed answer): the leader may have committed it, so the client must hear "maybe written" and
// retry (an idempotent retry of what did commit is answered as a duplicate by the leader).
var (
	errForwardFailed     = errors.New("agent: forwarding to the partition leader failed")
	errForwardUnanswered = errors.New("agent: the partition leader did not answer a forwarded request")
)
