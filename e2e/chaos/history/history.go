package history

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// Type is what an event records.
type Type string

const (
	// Send is one record produced: Topic, Partition, Value; on OK, the Offset acknowledged.
	Send Type = "send"
	// Poll is one poll of a consumer that returned records: Reads, in the order returned.
	Poll Type = "poll"
	// Commit is one group offset commit of one partition: Group, Topic, Partition, Offset.
	Commit Type = "commit"
	// Committed is a group's committed offset of one partition as read back (OffsetFetch).
	Committed Type = "committed"
	// End is a partition's log end offset (Offset), read after the workload stopped.
	End Type = "end"
	// Fault is a step of a fault: Fault (its kind), Phase, Detail.
	Fault Type = "fault"
	// Txn is one transaction of a transactional producer, from its BeginTransaction (Start) to the
	// end of its EndTxn (End): Txn names it, Decided is when EndTxn was called (zero: never), Detail
	// says what the client meant (commit or abort), Writes are the records it produced (Offset -1
	// when the send was not acknowledged), and, for a consume-transform-produce transaction, Group
	// and TxnOffsets are the group offsets (next offsets to read) it committed with
	// TxnOffsetCommit. Outcome: OK committed, Failed certainly aborted, Indeterminate either.
	Txn Type = "txn"
	// ReadCommitted is one poll of a read_committed consumer that returned records: Reads, as for
	// Poll. The final read_committed drain of the transactional topics is Proc TxnDrainProc.
	ReadCommitted Type = "rc-poll"
	// TxnDrained says that the final read_committed drain read every transactional partition to
	// its end: what it did not read, no read_committed consumer can.
	TxnDrained Type = "txn-drained"
)

// TxnDrainProc is the Proc of the final read_committed drain's polls.
const TxnDrainProc = "txn-drain"

// Transformed is the value the consume-transform-produce transaction txn writes for the input value
// v: unique to the transaction, as every value of a history must be, since an input is transformed
// again after an abort.
func Transformed(v, txn string) string { return "ctp/" + txn + "/" + v }

// Untransformed is the input value of a value Transformed wrote.
func Untransformed(out string) (in string, ok bool) {
	rest, ok := strings.CutPrefix(out, "ctp/")
	if !ok {
		return "", false
	}
	// txn is <proc>/<seq>: two slashes.
	for range 2 {
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return "", false
		}
		rest = rest[i+1:]
	}
	return rest, true
}

// Outcome is how an operation ended, as its client saw it.
type Outcome string

const (
	// OK: the operation took effect (a send was acknowledged).
	OK Outcome = "ok"
	// Failed: the operation certainly did not take effect.
	Failed Outcome = "failed"
	// Indeterminate: the operation may or may not have taken effect (a timeout, a cut connection).
	Indeterminate Outcome = "indeterminate"
)

// Phases of a fault.
const (
	PhaseInject    = "inject"
	PhaseHeal      = "heal"
	PhaseRecovered = "recovered" // every agent ready, every partition led and acknowledging again
)

// Event is one operation. Which fields are set depends on Type.
type Event struct {
	Type      Type      `json:"type"`
	Proc      string    `json:"proc,omitempty"`    // the client: producer-1, assign-1, group-manual-2.3, drain
	Session   int       `json:"session,omitempty"` // a consumer's session: offsets only move forward within one
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Outcome   Outcome   `json:"outcome,omitempty"`
	Err       string    `json:"err,omitempty"`
	Topic     string    `json:"topic,omitempty"`
	Partition int32     `json:"partition,omitempty"`
	Offset    int64     `json:"offset,omitempty"`
	Value     string    `json:"value,omitempty"`
	Group     string    `json:"group,omitempty"`
	Reads     []Read    `json:"reads,omitempty"`
	Fault     string    `json:"fault,omitempty"`
	Phase     string    `json:"phase,omitempty"`
	Detail    string    `json:"detail,omitempty"`
	// Transactions (Type Txn).
	Txn        string    `json:"txn,omitempty"`
	Decided    time.Time `json:"decided,omitzero"`
	Writes     []Read    `json:"writes,omitempty"`
	TxnOffsets []Read    `json:"txn_offsets,omitempty"` // Value empty
}

// Read is one record a poll returned.
type Read struct {
	Topic     string `json:"t"`
	Partition int32  `json:"p"`
	Offset    int64  `json:"o"`
	Value     string `json:"v"`
}

// TP is a topic partition.
type TP struct {
	Topic     string
	Partition int32
}

func (tp TP) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// TP is the event's topic partition.
func (e Event) TP() TP { return TP{e.Topic, e.Partition} }

// TP is the read's topic partition.
func (r Read) TP() TP { return TP{r.Topic, r.Partition} }

// Recorder collects events from many goroutines, keeps them in order of arrival and writes each as
// a JSON line to a file.
type Recorder struct {
	mu     sync.Mutex
	events []Event
	f      *os.File
	w      *bufio.Writer
	err    error // the first write error
}

// NewRecorder records to path (created or truncated); with an empty path it only keeps events in
// memory.
func NewRecorder(path string) (*Recorder, error) {
	r := &Recorder{}
	if path == "" {
		return r, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	r.f, r.w = f, bufio.NewWriterSize(f, 1<<20)
	return r, nil
}

// Add records e.
func (r *Recorder) Add(e Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
	if r.w == nil || r.err != nil {
		return
	}
	b, err := json.Marshal(e)
	if err == nil {
		b = append(b, '\n')
		_, err = r.w.Write(b)
	}
	r.err = err
}

// Events returns a copy of every event recorded so far, in order of arrival.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Close flushes the file; it returns the first error any write met. Safe to call twice.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return r.err
	}
	err := errors.Join(r.err, r.w.Flush(), r.f.Close())
	r.f, r.w = nil, nil
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// ReadAll decodes a history written by a Recorder.
func ReadAll(rd io.Reader) ([]Event, error) {
	var events []Event
	dec := json.NewDecoder(rd)
	for {
		var e Event
		err := dec.Decode(&e)
		if errors.Is(err, io.EOF) {
			return events, nil
		}
		if err != nil {
			return events, fmt.Errorf("history: event %d: %w", len(events)+1, err)
		}
		events = append(events, e)
	}
}

// Load reads the history at path.
func Load(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("history: %w", err)
	}
	defer f.Close()
	return ReadAll(f)
}
