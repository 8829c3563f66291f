package workload

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// fetchMaxWait is the consumers' long-poll: short, so that a poll's end time is close to when its
// records became visible.
const fetchMaxWait = 500 * time.Millisecond

// assignConsumer reads every partition from the start by direct assignment, in one session.
type assignConsumer struct {
	name        string
	done        chan struct{}
	fetchErrors atomic.Int64
}

func (w *Workload) startAssign(ctx context.Context, name string) (*assignConsumer, error) {
	offsets := map[string]map[int32]kgo.Offset{}
	for _, tp := range w.tps {
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = map[int32]kgo.Offset{}
		}
		offsets[tp.Topic][tp.Partition] = kgo.NewOffset().AtStart()
	}
	cl, err := w.client(name, kgo.ConsumePartitions(offsets), kgo.FetchMaxWait(fetchMaxWait))
	if err != nil {
		return nil, err
	}
	a := &assignConsumer{name: name, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		defer cl.Close()
		for ctx.Err() == nil {
			pollOnce(ctx, w.cfg.Recorder, cl, name, 1, &a.fetchErrors)
		}
	}()
	return a, nil
}

func (a *assignConsumer) wait() { <-a.done }

// pollOnce polls cl once and records the records it returned; it returns them.
func pollOnce(ctx context.Context, rec *history.Recorder, cl *kgo.Client, proc string, session int, fetchErrors *atomic.Int64) []*kgo.Record {
	start := time.Now()
	fetches := cl.PollFetches(ctx)
	end := time.Now()
	fetches.EachError(func(_ string, _ int32, err error) {
		if ctx.Err() == nil {
			fetchErrors.Add(1)
		}
	})
	recs := fetches.Records()
	if len(recs) == 0 {
		return nil
	}
	e := history.Event{Type: history.Poll, Proc: proc, Session: session, Start: start, End: end, Outcome: history.OK}
	for _, r := range recs {
		e.Reads = append(e.Reads, history.Read{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
	}
	rec.Add(e)
	return recs
}

// groupMember is one slot of a consumer group; each start is a new incarnation (a new client, a new
// member of the group). Its session number moves on every assignment, revocation or loss of
// partitions: offsets of a partition only move forward within one session.
type groupMember struct {
	w      *Workload
	group  string
	slot   int
	manual bool // commits each poll's records with CommitRecords; else autocommits

	incarnation int
	session     atomic.Int64
	// commitFloor is a lower bound of when the next autocommit began: franz-go runs one commit of a
	// client at a time, so it is the end of the previous one (or the incarnation's start).
	commitMu    sync.Mutex
	commitFloor time.Time
	cancel      context.CancelFunc
	done        chan struct{}
	fetchErrors atomic.Int64
}

func (m *groupMember) name() string { return fmt.Sprintf("%s-%d.%d", m.group, m.slot, m.incarnation) }

func (m *groupMember) start(parent context.Context) error {
	m.incarnation++
	name := m.name()
	m.commitMu.Lock()
	m.commitFloor = time.Now()
	m.commitMu.Unlock()
	bump := func(context.Context, *kgo.Client, map[string][]int32) { m.session.Add(1) }
	opts := []kgo.Opt{
		kgo.ConsumerGroup(m.group), kgo.ConsumeTopics(m.w.cfg.Topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(fetchMaxWait), kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(10 * time.Second), kgo.HeartbeatInterval(time.Second), kgo.RebalanceTimeout(20 * time.Second),
		kgo.OnPartitionsAssigned(bump), kgo.OnPartitionsLost(bump),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			m.commitUncommitted(ctx, cl, name) // what kgo does on revoke, recorded
			m.session.Add(1)
		}),
	}
	if m.manual {
		opts = append(opts, kgo.DisableAutoCommit())
	} else {
		opts = append(opts, kgo.AutoCommitInterval(time.Second), kgo.AutoCommitCallback(m.recordCommit(name, time.Time{})))
	}
	cl, err := m.w.client(name, opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(parent)
	m.cancel, m.done = cancel, make(chan struct{})
	go func() {
		defer close(m.done)
		defer cl.Close() // leaves the group; the revoke commits what was polled
		for ctx.Err() == nil {
			m.poll(ctx, cl, name)
		}
	}()
	return nil
}

func (m *groupMember) poll(ctx context.Context, cl *kgo.Client, name string) {
	defer cl.AllowRebalance()
	recs := pollOnce(ctx, m.w.cfg.Recorder, cl, name, int(m.session.Load()), &m.fetchErrors)
	if !m.manual || len(recs) == 0 {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	start := time.Now()
	err := cl.CommitRecords(cctx, recs...)
	end := time.Now()
	outcome := history.OK
	if err != nil {
		outcome = history.Indeterminate // some partitions may have been committed
	}
	next := map[history.TP]int64{}
	for _, r := range recs {
		tp := history.TP{Topic: r.Topic, Partition: r.Partition}
		next[tp] = max(next[tp], r.Offset+1)
	}
	for tp, off := range next {
		e := history.Event{Type: history.Commit, Proc: name, Group: m.group, Start: start, End: end, Outcome: outcome,
			Topic: tp.Topic, Partition: tp.Partition, Offset: off}
		if err != nil {
			e.Err = err.Error()
		}
		m.w.cfg.Recorder.Add(e)
	}
}

// commitUncommitted commits what was polled and not yet committed, recording it.
func (m *groupMember) commitUncommitted(ctx context.Context, cl *kgo.Client, name string) {
	offsets := cl.UncommittedOffsets()
	if len(offsets) == 0 {
		return
	}
	// CommitOffsetsSync returns once its callback has run.
	cl.CommitOffsetsSync(ctx, offsets, m.recordCommit(name, time.Now()))
}

// recordCommit returns a commit callback that records each partition's outcome. start is when the
// commit began; zero for autocommits, whose callback cannot tell: they take commitFloor, earlier
// than the truth, which only makes the checker order fewer pairs of commits.
func (m *groupMember) recordCommit(name string, start time.Time) func(*kgo.Client, *kmsg.OffsetCommitRequest, *kmsg.OffsetCommitResponse, error) {
	return func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		end := time.Now()
		began := start
		m.commitMu.Lock()
		if began.IsZero() {
			began = m.commitFloor
		}
		m.commitFloor = end
		m.commitMu.Unlock()
		codes := map[history.TP]int16{}
		if resp != nil {
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					codes[history.TP{Topic: t.Topic, Partition: p.Partition}] = p.ErrorCode
				}
			}
		}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				tp := history.TP{Topic: t.Topic, Partition: p.Partition}
				e := history.Event{Type: history.Commit, Proc: name, Group: m.group, Start: began, End: end,
					Topic: tp.Topic, Partition: tp.Partition, Offset: p.Offset}
				code, answered := codes[tp]
				switch {
				case err != nil:
					e.Outcome, e.Err = history.Indeterminate, err.Error()
				case !answered:
					e.Outcome, e.Err = history.Indeterminate, "no answer for the partition"
				case code != 0:
					e.Outcome, e.Err = history.Failed, kerr.ErrorForCode(code).Error()
				default:
					e.Outcome = history.OK
				}
				m.w.cfg.Recorder.Add(e)
			}
		}
	}
}

// stop ends the incarnation: the client leaves the group.
func (m *groupMember) stop() {
	if m.cancel == nil {
		return
	}
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(consumerStop):
		m.w.cfg.Logf("workload: %s did not stop within %v", m.name(), consumerStop)
	}
	m.cancel = nil
}
