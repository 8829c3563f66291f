package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// The sequence API is how an agent that wrote a produce's bytes into its own flush object (say, an
// agent in the producer's zone) has the partition's leader sequence them: it sends only the metadata
// (object, extent, record count, producer sequence), the leader checks sequences, assigns offsets and
// commits with its fenced Txn, and answers the base offsets. It travels on the Kafka listener, with a
// Kafka request header and an API key outside Kafka's range, and a JSON body.
const (
	apiKeySequence     = 32700
	maxSequenceAppends = 10000
)

// seqAppend is one forwarded batch.
type seqAppend struct {
	Topic         coord.TopicID `json:"topic"`
	Partition     int32         `json:"partition"`
	Object        string        `json:"object"`
	Pos           int64         `json:"pos"`
	Len           int32         `json:"len"`
	CRC           uint32        `json:"crc"`
	Records       int32         `json:"records"`
	MaxTimestamp  int64         `json:"maxTs"`
	ProducerID    int64         `json:"pid"`
	ProducerEpoch int16         `json:"pepoch"`
	BaseSequence  int32         `json:"seq"`
}

type seqResult struct {
	Base int64 `json:"base"`
	Code int16 `json:"code"`
}

// sequenceRequest is the sequence API's request as a kmsg.Request, so that it shares the Kafka
// listener's framing, ordering and connection handling.
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
		if x.Partition < 0 || x.Object == "" || x.Pos < 0 || x.Len < batchHeaderLen || x.Records <= 0 {
			return fmt.Errorf("invalid append %+v", x)
		}
	}
	return nil
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
	done    chan struct{}
}

// handleSequence queues a forwarded request for the sequencer before it returns, so that the requests
// of one forwarding agent are sequenced in the order it sent them. The returned function waits for
// the outcome.
func (a *Agent) handleSequence(ctx context.Context, req *sequenceRequest) func() kmsg.Response {
	resp := &sequenceResponse{Results: make([]seqResult, len(req.Appends))}
	w := &remoteWork{done: make(chan struct{})}
	for _, x := range req.Appends {
		t, ok := a.cache.TopicByID(x.Topic)
		if !ok || x.Partition >= t.Partitions {
			w.appends = append(w.appends, &pendingAppend{err: kerr.UnknownTopicOrPartition, done: closedChan})
			continue
		}
		w.appends = append(w.appends, &pendingAppend{
			tp: coord.TP{Topic: x.Topic, Partition: x.Partition}, topic: t.Name, object: x.Object,
			extent: segstore.Extent{TopicID: x.Topic, Partition: x.Partition, Pos: x.Pos, Len: x.Len, CRC: x.CRC},
			meta: batchMeta{records: x.Records, maxTimestamp: x.MaxTimestamp, producerID: x.ProducerID,
				producerEpoch: x.ProducerEpoch, baseSequence: x.BaseSequence},
			done: make(chan struct{}),
		})
	}
	var queued []*pendingAppend
	for _, p := range w.appends {
		if p.done != closedChan {
			queued = append(queued, p)
		}
	}
	if len(queued) > 0 {
		sort.SliceStable(queued, func(i, j int) bool { return tpLess(queued[i].tp, queued[j].tp) })
		select {
		case a.remote <- &remoteWork{appends: queued, done: w.done}:
		case <-ctx.Done():
			return func() kmsg.Response { return nil }
		}
	} else {
		close(w.done)
	}
	return func() kmsg.Response {
		select {
		case <-w.done:
		case <-ctx.Done():
			return nil
		}
		for i, p := range w.appends {
			<-p.done
			resp.Results[i] = seqResult{Base: p.base, Code: kafkaCode(p.err)}
		}
		return resp
	}
}

// closedChan marks appends answered before they reach the sequencer.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Forwarding failures. errForwardFailed: the request never reached the leader (not registered, no
// connection, the write failed): not written, the client looks for the leader and retries.
// errForwardUnanswered: the request was sent but no usable answer came back (timeout, reset, a
// malformed answer): the leader may have committed it, so the client must hear "maybe written" and
// retry (an idempotent retry of what did commit is answered as a duplicate by the leader).
var (
	errForwardFailed     = errors.New("agent: forwarding to the partition leader failed")
	errForwardUnanswered = errors.New("agent: the partition leader did not answer a forwarded request")
)
