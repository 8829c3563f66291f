package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnSpec is one transactional produce workload: producers, each with a transactional id of its own,
// run transactions one after the other, each of records records (round-robin over the partitions)
// committed with EndTxn once every record is acknowledged.
type txnSpec struct {
	size       int // record value bytes
	partitions int32
	producers  int
	records    int // per transaction
}

func (s txnSpec) String() string {
	return fmt.Sprintf("%s × %dp × %d txn prod × %d records/txn", sizeString(s.size), s.partitions, s.producers, s.records)
}

// txnResult is one closed-loop transactional run: what committed within the window.
type txnResult struct {
	mibps, txnps   float64
	endP50, endP99 float64 // ms: EndTxn commit, from the call to its answer
	commitP50      float64 // ms: a whole transaction, from its first record to the commit's answer
	committed      int     // transactions committed within the window
	failed         int64   // transactions that did not commit (whole run)
	firstErr       error
}

// txnPhase runs the transactional workloads on fresh clusters of the plan's txnTargets (those among
// --targets), with transactions on for StreamHouse, so that no earlier run's garbage or
// topics weigh on them.
func (s *suite) txnPhase() error {
	var names []string
	for _, n := range s.p.txnTargets {
		if slices.Contains(strings.Split(s.o.targets, ","), n) {
			names = append(names, n)
		}
	}
	for _, spec := range s.p.txns {
		res := map[string]txnResult{}
		for _, name := range names {
			t, err := startTxnTarget(s.ctx, name, s.log)
			if err != nil {
				return fmt.Errorf("transactions on %s: %w", name, err)
			}
			progress("transactions %s on %s", spec, name)
			r, err := runTxn(s.ctx, t, spec, s.p.warm, s.p.txnWindow)
			t.Close()
			settle()
			if err != nil {
				return fmt.Errorf("transactions %s on %s: %w", spec, name, err)
			}
			if r.failed > 0 {
				s.rep.note("transactions %s on %s: %d transactions did not commit (first error: %v)", spec, name, r.failed, r.firstErr)
			}
			res[name] = r
		}
		s.rep.addTxn(spec, res)
	}
	return nil
}

func startTxnTarget(ctx context.Context, name string, log hclog.Logger) (target, error) {
	switch name {
	case "kfake":
		return startKfake(ctx)
	case "sh-1":
		return startSH(ctx, shConfig{name: name, agents: 1, transactions: true}, log)
	case "sh-3":
		return startSH(ctx, shConfig{name: name, agents: 3, transactions: true}, log)
	}
	return nil, fmt.Errorf("no transactional target %q", name)
}

// runTxn runs spec closed loop for warm, then counts the transactions that commit within window.
func runTxn(ctx context.Context, t target, spec txnSpec, warm, window time.Duration) (txnResult, error) {
	var r txnResult
	topic, err := createTopic(ctx, t, spec.partitions)
	if err != nil {
		return r, err
	}
	defer deleteTopic(ctx, t, topic)
	run := &txnRun{spec: spec}
	pctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range spec.producers {
		cl, err := newClient(ctx, t.Name(), append(producerOpts(t.Brokers(), topic, "none"),
			kgo.TransactionalID(fmt.Sprintf("%s-%d", topic, i)), kgo.TransactionTimeout(time.Minute))...)
		if err != nil {
			cancel()
			wg.Wait()
			return r, err
		}
		wg.Go(func() {
			defer cl.Close()
			run.loop(pctx, cl, t.Name())
		})
	}
	time.Sleep(warm)
	run.open(time.Now())
	time.Sleep(window)
	secs := run.close(time.Now())
	cancel()
	wg.Wait()
	run.mu.Lock()
	defer run.mu.Unlock()
	slices.Sort(run.ends)
	slices.Sort(run.whole)
	r.committed = len(run.ends)
	r.mibps = float64(run.bytes) / (1 << 20) / secs
	r.txnps = float64(r.committed) / secs
	r.endP50, r.endP99 = percentile(run.ends, 0.5), percentile(run.ends, 0.99)
	r.commitP50 = percentile(run.whole, 0.5)
	r.failed = run.failed.Load()
	if e, ok := run.firstErr.Load().(error); ok {
		r.firstErr = e
	}
	if r.committed == 0 {
		return r, fmt.Errorf("no transaction committed within %v (%d failed, first error: %v)", window, r.failed, r.firstErr)
	}
	return r, nil
}

// txnRun counts what committed within its window.
type txnRun struct {
	spec     txnSpec
	failed   atomic.Int64
	firstErr atomic.Value

	mu       sync.Mutex
	from, to time.Time // the window; zero to: still open
	ends     []time.Duration
	whole    []time.Duration
	bytes    int64
}

func (r *txnRun) open(at time.Time) {
	r.mu.Lock()
	r.from = at
	r.mu.Unlock()
}

func (r *txnRun) close(at time.Time) float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.to = at
	return at.Sub(r.from).Seconds()
}

// committed counts one transaction whose commit was answered at end, if that is within the window.
func (r *txnRun) committed(start, ended time.Time, end time.Duration, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.from.IsZero() || ended.Before(r.from) || !r.to.IsZero() {
		return
	}
	r.ends = append(r.ends, end)
	r.whole = append(r.whole, ended.Sub(start))
	r.bytes += bytes
}

func (r *txnRun) fail(err error) {
	r.failed.Add(1)
	r.firstErr.CompareAndSwap(nil, err)
}

func (r *txnRun) loop(ctx context.Context, cl *kgo.Client, target string) {
	for seq := uint64(0); ctx.Err() == nil; seq++ {
		var produceErr atomic.Value
		promise := func(_ *kgo.Record, err error) {
			if err != nil {
				produceErr.CompareAndSwap(nil, err)
			}
		}
		start := time.Now()
		if err := cl.BeginTransaction(); err != nil {
			r.fail(err)
			return
		}
		for i := range r.spec.records {
			off := int((seq*uint64(r.spec.records) + uint64(i)) * 4099 % uint64(len(randomPool)-r.spec.size))
			cl.Produce(ctx, &kgo.Record{Value: randomPool[off : off+r.spec.size]}, promise)
		}
		ferr := cl.Flush(ctx)
		perr, _ := produceErr.Load().(error)
		commit := ferr == nil && perr == nil
		began := time.Now()
		// Not ctx: a cancelled EndTxn leaves the client's state unknown.
		ectx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := cl.EndTransaction(ectx, kgo.TransactionEndTry(commit))
		cancel()
		ended := time.Now()
		switch {
		case ctx.Err() != nil:
			return // the run is over: what did not finish is not a failure
		case err != nil:
			r.fail(fmt.Errorf("EndTxn: %w", err))
			return // the client's transactional state is unknown
		case !commit:
			r.fail(fmt.Errorf("a record failed, the transaction aborted: %w", firstNonNil(perr, ferr)))
			continue
		}
		r.committed(start, ended, ended.Sub(began), int64(r.spec.records*r.spec.size))
	}
}

func firstNonNil(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (r *report) addTxn(spec txnSpec, res map[string]txnResult) {
	const sec = "transactions, closed loop (commits answered within the window)"
	w := spec.String()
	r.add(sec, "committed produce", w, "MiB/s", pick(res, func(t txnResult) float64 { return t.mibps }))
	r.add(sec, "transactions committed", w, "/s", pick(res, func(t txnResult) float64 { return t.txnps }))
	r.add(sec, "EndTxn commit p50", w, "ms", pick(res, func(t txnResult) float64 { return t.endP50 }))
	r.add(sec, "EndTxn commit p99", w, "ms", pick(res, func(t txnResult) float64 { return t.endP99 }))
	r.add(sec, "transaction p50 (begin to commit answered)", w, "ms", pick(res, func(t txnResult) float64 { return t.commitP50 }))
}
