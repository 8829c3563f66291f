package workload

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// The transactional workload's defaults and time limits.
const (
	DefaultTxnProducers = 3
	DefaultTxnRate      = 6                // transactions/s over every transactional producer
	DefaultCTPMembers   = 2                // consume-transform-produce group members
	txnTimeout          = 10 * time.Second // every transactional client's transaction.timeout.ms
	txnProduceTimeout   = 20 * time.Second // for a transaction's records to be acknowledged
	txnEndTimeout       = 30 * time.Second
	// CTPGroup is the consumer group of the consume-transform-produce stage.
	CTPGroup = "chaos-txn-ctp"
)

// TxnConfig says what transactional traffic to run: producers writing transactions of 1 to 4
// records over the partitions of Input, a quarter of them aborted on purpose; a consume-transform-
// produce stage (franz-go GroupTransactSession members of CTPGroup) reading Input read_committed and
// writing each record's transformed value (history.Transformed) to the same partition of Output in
// transactions that commit the group's offsets, a fifth aborted on purpose; and a read_committed
// consumer of both topics. Every transaction and read goes into the history.
type TxnConfig struct {
	Seeds         func() []string
	Input, Output string
	Partitions    int
	Producers     int // default DefaultTxnProducers
	Rate          int // transactions/s over every producer; default DefaultTxnRate
	Members       int // CTP members; default DefaultCTPMembers; <0: none
	Seed          uint64
	Recorder      *history.Recorder
	Logf          func(format string, args ...any)
}

// Validate fills in defaults and rejects what cannot work.
func (cfg *TxnConfig) Validate() error {
	if cfg.Seeds == nil || cfg.Input == "" || cfg.Output == "" || cfg.Partitions <= 0 || cfg.Recorder == nil {
		return errors.New("workload: transactions: Seeds, Input, Output, Partitions and Recorder are required")
	}
	if cfg.Producers <= 0 {
		cfg.Producers = DefaultTxnProducers
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultTxnRate
	}
	if cfg.Members == 0 {
		cfg.Members = DefaultCTPMembers
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return nil
}

// TxnWorkload is running transactional traffic.
type TxnWorkload struct {
	cfg      TxnConfig
	in, out  []history.TP
	stopProd context.CancelFunc
	stopRest context.CancelFunc
	prodWG   sync.WaitGroup
	restWG   sync.WaitGroup

	committed, aborted, indeterminate atomic.Int64
	fetchErrors                       atomic.Int64
	mu                                sync.Mutex
	errs                              map[string]int
}

// NewTxn validates cfg; it starts nothing.
func NewTxn(cfg TxnConfig) (*TxnWorkload, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &TxnWorkload{cfg: cfg, errs: map[string]int{}}
	for p := range int32(cfg.Partitions) {
		t.in = append(t.in, history.TP{Topic: cfg.Input, Partition: p})
		t.out = append(t.out, history.TP{Topic: cfg.Output, Partition: p})
	}
	return t, nil
}

func (t *TxnWorkload) client(name string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append(clientOpts(t.cfg.Seeds, name), opts...)...)
}

func (t *TxnWorkload) countErr(err error) {
	t.mu.Lock()
	t.errs[errorKind(err)]++
	t.mu.Unlock()
}

// CreateTopics creates Input and Output.
func (t *TxnWorkload) CreateTopics(ctx context.Context) error {
	cl, err := t.client("txn-admin")
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, int32(t.cfg.Partitions), 1, nil, t.cfg.Input, t.cfg.Output)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("workload: create topics %s, %s: %w", t.cfg.Input, t.cfg.Output, err)
	}
	return nil
}

// Start starts the producers, the consume-transform-produce members and the read_committed consumer.
func (t *TxnWorkload) Start() {
	pctx, pcancel := context.WithCancel(context.Background())
	rctx, rcancel := context.WithCancel(context.Background())
	t.stopProd, t.stopRest = pcancel, rcancel
	interval := time.Duration(float64(time.Second) * float64(t.cfg.Producers) / float64(t.cfg.Rate))
	for i := range t.cfg.Producers {
		p := &txnProducer{t: t, name: fmt.Sprintf("txn-producer-%d", i+1), id: fmt.Sprintf("chaos-txn-%d", i+1),
			rng: rand.New(rand.NewPCG(t.cfg.Seed, uint64(i+1)))}
		t.prodWG.Go(func() { p.loop(pctx, interval) })
	}
	for i := range max(t.cfg.Members, 0) {
		m := &ctpMember{t: t, slot: i + 1, rng: rand.New(rand.NewPCG(t.cfg.Seed, uint64(100+i)))}
		t.restWG.Go(func() { m.loop(rctx) })
	}
	t.restWG.Go(func() { t.readCommitted(rctx) })
}

// Stop stops the producers, lets the stage consume what they wrote for up to settle, then stops the
// stage and the consumer. Every transaction ends, one way or another, before Stop returns.
func (t *TxnWorkload) Stop(settle time.Duration) {
	if t.stopProd == nil {
		return
	}
	t.stopProd()
	t.prodWG.Wait()
	sleepCtx(context.Background(), settle)
	t.stopRest()
	t.restWG.Wait()
}

// TxnStats are what the transactional workload counted besides the history.
type TxnStats struct {
	Committed, Aborted, Indeterminate int
	Errors                            map[string]int // by error, of transactions that did not commit
	FetchErrors                       int
}

// Stats returns the counts so far.
func (t *TxnWorkload) Stats() TxnStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TxnStats{Committed: int(t.committed.Load()), Aborted: int(t.aborted.Load()), Indeterminate: int(t.indeterminate.Load()),
		Errors: maps.Clone(t.errs), FetchErrors: int(t.fetchErrors.Load())}
}

func (t *TxnWorkload) record(e history.Event) {
	switch e.Outcome {
	case history.OK:
		t.committed.Add(1)
	case history.Failed:
		t.aborted.Add(1)
	default:
		t.indeterminate.Add(1)
	}
	t.cfg.Recorder.Add(e)
}

// txnProducer runs one transaction at a time with one transactional id; after any error it closes its
// client and makes a new one, whose InitProducerID fences and aborts whatever the old one left open.
type txnProducer struct {
	t        *TxnWorkload
	name, id string
	rng      *rand.Rand
	cl       *kgo.Client
}

func (p *txnProducer) loop(ctx context.Context, interval time.Duration) {
	defer func() {
		if p.cl != nil {
			p.cl.Close()
		}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if p.cl == nil {
			cl, err := p.t.client(p.name, kgo.TransactionalID(p.id), kgo.TransactionTimeout(txnTimeout),
				kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
			if err != nil {
				p.t.cfg.Logf("workload: %s: %v", p.name, err)
				continue
			}
			p.cl = cl
		}
		if !p.one(seq) {
			p.cl.Close()
			p.cl = nil
		}
	}
}

// one runs transaction seq; it returns false when the client must be replaced.
func (p *txnProducer) one(seq int) bool {
	n := 1 + p.rng.IntN(4)
	abort := p.rng.IntN(4) == 0
	tps := make([]history.TP, n)
	for i := range tps {
		tps[i] = p.t.in[p.rng.IntN(len(p.t.in))]
	}
	start := time.Now()
	if err := p.cl.BeginTransaction(); err != nil {
		p.t.cfg.Logf("workload: %s: begin: %v", p.name, err)
		return false
	}
	e := history.Event{Type: history.Txn, Proc: p.name, Txn: fmt.Sprintf("%s/%d", p.name, seq), Start: start, Detail: "commit"}
	e.Writes = make([]history.Read, n)
	pctx, cancel := context.WithTimeout(context.Background(), txnProduceTimeout)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var produceErr error
	for i, tp := range tps {
		v := fmt.Sprintf("%s/%d/%s/%d/%d", tp.Topic, tp.Partition, p.name, seq, i)
		e.Writes[i] = history.Read{Topic: tp.Topic, Partition: tp.Partition, Offset: -1, Value: v}
		wg.Add(1)
		p.cl.Produce(pctx, &kgo.Record{Topic: tp.Topic, Partition: tp.Partition, Value: []byte(v)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				produceErr = cmpErr(produceErr, err)
				return
			}
			e.Writes[i].Offset = r.Offset
		})
	}
	wg.Wait()
	cancel()
	commit := !abort && produceErr == nil
	switch {
	case abort:
		e.Detail = "abort"
	case produceErr != nil:
		e.Detail = "abort: a record failed: " + produceErr.Error()
		p.t.countErr(produceErr)
	}
	ectx, cancel := context.WithTimeout(context.Background(), txnEndTimeout)
	defer cancel()
	e.Decided = time.Now()
	err := p.cl.EndTransaction(ectx, kgo.TransactionEndTry(commit))
	e.End = time.Now()
	e.Outcome = txnOutcome(commit, err)
	if err != nil {
		e.Err = err.Error()
		p.t.countErr(err)
	}
	p.t.record(e)
	return err == nil && produceErr == nil
}

// txnOutcome is how a producer's transaction ended: commit says whether EndTxn was sent to commit,
// err is what EndTransaction returned. A transaction never sent a commit cannot have committed,
// whatever its abort answered; a commit answered with an error may have committed or not.
func txnOutcome(commit bool, err error) history.Outcome {
	switch {
	case !commit:
		return history.Failed
	case err == nil:
		return history.OK
	}
	return history.Indeterminate
}

// ctpOutcome is how a GroupTransactSession transaction ended: abort says it was ended with TryAbort,
// committed and err are what End returned. franz-go reports a commit it could not confirm (retried as
// an abort) as not committed, with no error, as it does a commit it downgraded to an abort itself: only
// a deliberate abort is certain.
func ctpOutcome(abort, committed bool, err error) history.Outcome {
	switch {
	case abort:
		return history.Failed
	case committed && err == nil:
		return history.OK
	}
	return history.Indeterminate
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// ctpMember is one slot of the consume-transform-produce stage; after any error it closes its session
// and starts a new incarnation with the same transactional id (which fences the old one).
type ctpMember struct {
	t           *TxnWorkload
	slot        int
	incarnation int
	rng         *rand.Rand
}

func (m *ctpMember) loop(ctx context.Context) {
	for ctx.Err() == nil {
		m.incarnation++
		m.run(ctx)
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

func (m *ctpMember) run(ctx context.Context) {
	name := fmt.Sprintf("ctp-%d.%d", m.slot, m.incarnation)
	opts := append(clientOpts(m.t.cfg.Seeds, name),
		kgo.TransactionalID(fmt.Sprintf("chaos-ctp-%d", m.slot)), kgo.TransactionTimeout(txnTimeout),
		kgo.ConsumerGroup(CTPGroup), kgo.ConsumeTopics(m.t.cfg.Input), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.FetchMaxWait(fetchMaxWait), kgo.SessionTimeout(10*time.Second), kgo.HeartbeatInterval(time.Second),
		kgo.RebalanceTimeout(20*time.Second))
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		m.t.cfg.Logf("workload: %s: %v", name, err)
		return
	}
	defer sess.Close()
	for seq := 1; ctx.Err() == nil; seq++ {
		start := time.Now()
		fetches := sess.PollFetches(ctx)
		end := time.Now()
		fetches.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil {
				m.t.fetchErrors.Add(1)
			}
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			continue
		}
		m.t.cfg.Recorder.Add(readEvent(history.ReadCommitted, name, m.incarnation, start, end, recs))
		if !m.one(sess, name, seq, recs) {
			return
		}
	}
}

// one transforms recs in one transaction; it returns false when the session must be replaced.
func (m *ctpMember) one(sess *kgo.GroupTransactSession, name string, seq int, recs []*kgo.Record) bool {
	start := time.Now()
	if err := sess.Begin(); err != nil {
		m.t.cfg.Logf("workload: %s: begin: %v", name, err)
		return false
	}
	abort := m.rng.IntN(5) == 0
	e := history.Event{Type: history.Txn, Proc: name, Txn: fmt.Sprintf("%s/%d", name, seq), Start: start, Group: CTPGroup, Detail: "commit"}
	if abort {
		e.Detail = "abort"
	}
	e.Writes = make([]history.Read, len(recs))
	var wg sync.WaitGroup
	var mu sync.Mutex
	pctx, cancel := context.WithTimeout(context.Background(), txnProduceTimeout)
	defer cancel()
	for i, r := range recs {
		v := history.Transformed(string(r.Value), e.Txn)
		e.Writes[i] = history.Read{Topic: m.t.cfg.Output, Partition: r.Partition, Offset: -1, Value: v}
		wg.Add(1)
		sess.Produce(pctx, &kgo.Record{Topic: m.t.cfg.Output, Partition: r.Partition, Value: []byte(v)}, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err == nil {
				mu.Lock()
				e.Writes[i].Offset = r.Offset
				mu.Unlock()
			}
		})
	}
	// What End commits with TxnOffsetCommit: every partition's offset after what was polled since
	// the last commit (a session rewinds to the committed offsets after an abort).
	for topic, parts := range sess.Client().UncommittedOffsets() {
		for p, o := range parts {
			e.TxnOffsets = append(e.TxnOffsets, history.Read{Topic: topic, Partition: p, Offset: o.Offset})
		}
	}
	sort.Slice(e.TxnOffsets, func(i, j int) bool { return e.TxnOffsets[i].Partition < e.TxnOffsets[j].Partition })
	ectx, cancel := context.WithTimeout(context.Background(), txnEndTimeout)
	defer cancel()
	e.Decided = time.Now()
	committed, err := sess.End(ectx, kgo.TransactionEndTry(!abort))
	wg.Wait() // End flushed: every record has its outcome
	e.End = time.Now()
	e.Outcome = ctpOutcome(abort, committed, err)
	if !abort && !committed {
		e.Detail = "commit; the session reported it not committed"
	}
	if err != nil {
		e.Err = err.Error()
		m.t.countErr(err)
	}
	m.t.record(e)
	return err == nil
}

// readEvent is the history event of a poll that returned recs.
func readEvent(typ history.Type, proc string, session int, start, end time.Time, recs []*kgo.Record) history.Event {
	e := history.Event{Type: typ, Proc: proc, Session: session, Start: start, End: end, Outcome: history.OK}
	for _, r := range recs {
		if r.Attrs.IsControl() {
			continue
		}
		e.Reads = append(e.Reads, history.Read{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: string(r.Value)})
	}
	return e
}

// readCommitted reads both topics from the start, read_committed, by assignment, until ctx ends.
func (t *TxnWorkload) readCommitted(ctx context.Context) {
	cl, err := t.client("rc-1", kgo.ConsumePartitions(startOffsets(append(slices.Clone(t.in), t.out...))),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(fetchMaxWait))
	if err != nil {
		t.cfg.Logf("workload: rc-1: %v", err)
		return
	}
	defer cl.Close()
	for ctx.Err() == nil {
		start := time.Now()
		fetches := cl.PollFetches(ctx)
		end := time.Now()
		fetches.EachError(func(_ string, _ int32, err error) {
			if ctx.Err() == nil {
				t.fetchErrors.Add(1)
			}
		})
		if recs := fetches.Records(); len(recs) > 0 {
			t.cfg.Recorder.Add(readEvent(history.ReadCommitted, "rc-1", 1, start, end, recs))
		}
	}
}

func startOffsets(tps []history.TP) map[string]map[int32]kgo.Offset {
	offsets := map[string]map[int32]kgo.Offset{}
	for _, tp := range tps {
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = map[int32]kgo.Offset{}
		}
		offsets[tp.Topic][tp.Partition] = kgo.NewOffset().AtStart()
	}
	return offsets
}

// Drain waits until no transaction is open on any partition of both topics (the last stable offset
// at the log end: the coordinator aborts what a client left open after the transaction timeout), then
// reads them whole from the start with a fresh read_committed consumer that keeps control records,
// so that it knows when it reached each log end; it records the polls (as TxnDrainProc, without the
// control records) and, once done, a TxnDrained event. It returns how many records it read.
func (t *TxnWorkload) Drain(ctx context.Context) (int, error) {
	tps := append(slices.Clone(t.in), t.out...)
	ends, err := t.stableEnds(ctx)
	if err != nil {
		return 0, err
	}
	cl, err := t.client(history.TxnDrainProc, kgo.ConsumePartitions(startOffsets(tps)), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(), kgo.FetchMaxWait(fetchMaxWait))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	next := map[history.TP]int64{}
	n := 0
	for {
		if missing := unfinished(tps, ends, next); len(missing) == 0 {
			t.cfg.Recorder.Add(history.Event{Type: history.TxnDrained, Start: time.Now(), End: time.Now(), Outcome: history.OK})
			return n, nil
		} else if ctx.Err() != nil {
			return n, fmt.Errorf("transactional drain: %d partitions not read to their end, e.g. %v at %d of %d: %w",
				len(missing), missing[0], next[missing[0]], ends[missing[0]], ctx.Err())
		}
		start := time.Now()
		fetches := cl.PollFetches(ctx)
		end := time.Now()
		recs := fetches.Records()
		for _, r := range recs {
			tp := history.TP{Topic: r.Topic, Partition: r.Partition}
			next[tp] = max(next[tp], r.Offset+1)
		}
		if e := readEvent(history.ReadCommitted, history.TxnDrainProc, 1, start, end, recs); len(e.Reads) > 0 {
			n += len(e.Reads)
			t.cfg.Recorder.Add(e)
		}
	}
}

// stableEnds waits until every partition's last stable offset is its log end, and returns them.
func (t *TxnWorkload) stableEnds(ctx context.Context) (map[history.TP]int64, error) {
	cl, err := t.client("txn-drain-admin")
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var last error
	for {
		ends, err := listed(adm.ListEndOffsets(ctx, t.cfg.Input, t.cfg.Output))
		var stable map[history.TP]int64
		if err == nil {
			stable, err = listed(adm.ListCommittedOffsets(ctx, t.cfg.Input, t.cfg.Output))
		}
		if err == nil {
			var open []string
			for tp, end := range ends {
				if stable[tp] != end {
					open = append(open, fmt.Sprintf("%v (stable %d, end %d)", tp, stable[tp], end))
				}
			}
			if len(open) == 0 {
				return ends, nil
			}
			sort.Strings(open)
			err = fmt.Errorf("transactions still open on %v", open)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("transactional drain: %w (%w)", last, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func listed(l kadm.ListedOffsets, err error) (map[history.TP]int64, error) {
	if err == nil {
		err = l.Error()
	}
	if err != nil {
		return nil, err
	}
	out := map[history.TP]int64{}
	l.Each(func(o kadm.ListedOffset) { out[history.TP{Topic: o.Topic, Partition: o.Partition}] = o.Offset })
	return out, nil
}

// ReadCommitted reads back CTPGroup's committed offsets and records them (partitions with a
// transaction's offsets pending answer UNSTABLE_OFFSET_COMMIT and are left out), retrying until ctx
// ends.
func (t *TxnWorkload) ReadCommitted(ctx context.Context) error {
	if t.cfg.Members < 0 {
		return nil
	}
	cl, err := t.client("txn-offsets-reader")
	if err != nil {
		return err
	}
	defer cl.Close()
	return readGroupOffsets(ctx, t.cfg.Recorder, kadm.NewClient(cl), CTPGroup, "txn-offsets-reader")
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
	}
}
