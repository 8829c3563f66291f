package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/checker"
	"github.com/streamhouse/streamhouse/e2e/chaos/cluster"
	"github.com/streamhouse/streamhouse/e2e/chaos/fault"
	"github.com/streamhouse/streamhouse/e2e/chaos/history"
	"github.com/streamhouse/streamhouse/e2e/chaos/workload"
)

// Time limits. They bound steps that normally take seconds; reaching one is a failure of the run.
const (
	startTimeout    = 2 * time.Minute
	warmupTimeout   = time.Minute
	stepTimeout     = 3 * time.Minute // one inject or heal
	recoveryTimeout = 90 * time.Second
	drainTimeout    = 2 * time.Minute // plus a quarter of the run: a cold read of a long log takes a while
)

// agentMaxConnsPerIP is every agent's --max-connections-per-ip: above what the thundering herd's
// clients open to one agent, below what the hostile clients' idle flood tries.
const agentMaxConnsPerIP = 512

// agentLimits are the limits every agent runs with besides that: short enough for the hostile clients'
// partial frames and idle connections to be cut off, and their long polls answered, within a fault.
var agentLimits = []string{"--max-connections-per-ip", strconv.Itoa(agentMaxConnsPerIP), "--connections-max-idle", "10s",
	"--frame-timeout", "2s", "--fetch-max-wait", "5s"}

// runner is one chaos run.
type runner struct {
	cfg   config
	log   *progress
	c     *cluster.Cluster
	rec   *history.Recorder
	w     *workload.Workload
	tw    *workload.TxnWorkload // nil: no transactional workload
	steps []stepResult
	fails []string // what went wrong besides anomalies: faults not injected, no recovery, a bad shutdown
}

// stepResult is what happened to one step of the schedule.
type stepResult struct {
	step      fault.Step
	desc      string
	injectErr error
	healErr   error
	recovery  time.Duration // from the end of the heal until healthy and acknowledging on every partition
	recovered bool
	report    string
}

// run runs the cluster, the workload and the schedule, checks the history and reports. It returns
// whether the run passed; an error means it could not run at all.
func run(cfg config) (bool, error) {
	out, err := outDir(cfg)
	if err != nil {
		return false, err
	}
	log, err := newProgress(filepath.Join(out, "run.log"))
	if err != nil {
		return false, err
	}
	defer log.close()
	cfg.out = out
	r := &runner{cfg: cfg, log: log}
	log.printf("seed %d (replay: make chaos SEED=%d), mode %s, output in %s", cfg.seed, cfg.seed, cfg.mode, out)
	res, err := r.run()
	if err != nil {
		r.fail("%v", err)
	}
	return r.report(res)
}

func outDir(cfg config) (string, error) {
	if cfg.out == "" {
		return os.MkdirTemp("", fmt.Sprintf("streamhouse-chaos-%d-", cfg.seed))
	}
	if err := os.MkdirAll(cfg.out, 0o755); err != nil {
		return "", err
	}
	return filepath.Abs(cfg.out)
}

func (r *runner) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.fails = append(r.fails, msg)
	r.log.printf("FAILURE: %s", msg)
}

// run does the run; what it returns is checked even if it fails midway, as far as it got.
func (r *runner) run() (res *results, err error) {
	ctx := context.Background()
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	ccfg := cluster.Config{Dir: r.cfg.out, Bin: r.cfg.bin, EtcdBin: r.cfg.etcdBin,
		Agents: r.cfg.agents, LeaseTTL: r.cfg.ttl, AgentFlags: slices.Clone(agentLimits), Seed: r.cfg.seed, Logf: r.log.printf}
	if r.cfg.txnProducers > 0 {
		ccfg.AgentFlags = append(ccfg.AgentFlags, "--transactions")
	}
	if r.cfg.security {
		flags, err := securitySetup(filepath.Join(r.cfg.out, "pki"))
		if err != nil {
			return nil, fmt.Errorf("security: %w", err)
		}
		ccfg.AgentFlags = append(ccfg.AgentFlags, flags...)
		ccfg.Listener, ccfg.ScramUsers = "SASL_SSL", map[string]string{securityUser: securityPass}
	}
	r.log.printf("%s", securityNote(r.cfg.security))
	r.c, err = cluster.Start(sctx, ccfg)
	if err != nil {
		return nil, fmt.Errorf("start the cluster: %w", err)
	}
	defer r.stopCluster()
	if r.rec, err = history.NewRecorder(filepath.Join(r.cfg.out, "history.jsonl")); err != nil {
		return nil, err
	}
	if err := r.startWorkload(ctx); err != nil {
		return nil, err
	}
	sched, err := fault.NewSchedule(r.cfg.seed, fault.Options{TTL: r.cfg.ttl, Agents: r.c.Agents(),
		Members: r.c.Members(), HerdConns: r.cfg.herdConns, HostileConns: r.cfg.hostileConns,
		HostileTopic: topicName(0), Only: r.cfg.only})
	if err != nil {
		return nil, err
	}
	r.runSchedule(ctx, sched)
	return r.finish(ctx), nil
}

func (r *runner) startWorkload(ctx context.Context) error {
	var topics []string
	for i := range r.cfg.topics {
		topics = append(topics, topicName(i))
	}
	var err error
	r.w, err = workload.New(workload.Config{Seeds: r.c.Brokers, Topics: topics, Partitions: r.cfg.partitions,
		Producers: r.cfg.producers, Rate: r.cfg.rate, RecordTimeout: r.cfg.recordTimeout, Churn: r.cfg.churn,
		Seed: r.cfg.seed, Recorder: r.rec, Logf: r.log.printf})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, warmupTimeout)
	defer cancel()
	if err := r.w.CreateTopics(cctx); err != nil {
		return err
	}
	start := time.Now()
	if err := r.w.Start(); err != nil {
		return err
	}
	if err := r.c.WaitHealthy(cctx); err != nil {
		return err
	}
	if err := r.w.WaitProgress(cctx, start); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	r.log.printf("workload: %d topics × %d partitions, %d producers at %d records/s, an assigned consumer, groups %v",
		r.cfg.topics, r.cfg.partitions, r.cfg.producers, r.cfg.rate, workload.Groups)
	if r.cfg.txnProducers == 0 {
		return nil
	}
	r.tw, err = workload.NewTxn(workload.TxnConfig{Seeds: r.c.Brokers, Input: txnInput, Output: txnOutput, Partitions: r.cfg.txnParts,
		Producers: r.cfg.txnProducers, Seed: r.cfg.seed, Recorder: r.rec, Logf: r.log.printf})
	if err != nil {
		return err
	}
	if err := r.tw.CreateTopics(cctx); err != nil {
		return err
	}
	r.tw.Start()
	r.log.printf("transactional workload: %d producers (transactions of 1-4 records over %s's %d partitions, a quarter aborted), "+
		"consume-transform-produce group %s (%s -> %s, a fifth aborted), a read_committed consumer",
		r.cfg.txnProducers, txnInput, r.cfg.txnParts, workload.CTPGroup, txnInput, txnOutput)
	return nil
}

// The transactional workload's topics.
const (
	txnInput  = "chaos-txn-in"
	txnOutput = "chaos-txn-out"
)

// runSchedule injects the schedule's faults one at a time: rounds of every fault (CI mode), or one
// round and then random faults until the duration is spent (long mode).
func (r *runner) runSchedule(ctx context.Context, sched *fault.Schedule) {
	deadline := time.Now().Add(r.cfg.duration)
	steps := sched.Round()
	if r.cfg.mode == modeCI {
		for range r.cfg.rounds - 1 {
			steps = append(steps, sched.Round()...)
		}
	}
	for i := 0; ; i++ {
		if i == len(steps) {
			if r.cfg.mode != modeLong || time.Now().After(deadline) {
				return
			}
			steps = append(steps, sched.Next())
		}
		r.runStep(ctx, i+1, len(steps), steps[i])
		sleep(ctx, r.cfg.quiet)
	}
}

func (r *runner) runStep(ctx context.Context, n, of int, step fault.Step) {
	f := step.Fault
	res := stepResult{step: step}
	r.log.printf("[%d/%d] %v", n, of, step)
	res.injectErr = r.phase(ctx, f, history.PhaseInject, func(ctx context.Context) error { return f.Inject(ctx, r.c) })
	if res.injectErr == nil {
		sleep(ctx, step.Hold)
	}
	// Heal even what failed to inject all the way: a half-done injection is still a fault.
	res.healErr = r.phase(ctx, f, history.PhaseHeal, func(ctx context.Context) error { return f.Heal(ctx, r.c) })
	res.desc = f.String()
	if res.injectErr != nil {
		r.fail("%s: inject: %v", res.desc, res.injectErr)
	}
	if res.healErr != nil {
		r.fail("%s: heal: %v", res.desc, res.healErr)
	}
	healed := time.Now()
	rctx, cancel := context.WithTimeout(ctx, recoveryTimeout)
	err := r.c.WaitHealthy(rctx)
	if err == nil {
		err = r.w.WaitProgress(rctx, healed)
	}
	cancel()
	res.recovery, res.recovered = time.Since(healed), err == nil
	r.rec.Add(history.Event{Type: history.Fault, Fault: f.Name(), Phase: history.PhaseRecovered, Detail: res.desc,
		Start: healed, End: time.Now(), Outcome: outcome(err), Err: errString(err)})
	if err != nil {
		r.fail("%s: no recovery within %v: %v", res.desc, recoveryTimeout, err)
	} else {
		r.log.printf("[%d/%d] %s: recovered %v after healing", n, of, res.desc, res.recovery.Round(time.Millisecond))
	}
	if rep, ok := f.(fault.Reporter); ok {
		res.report = rep.Report()
		r.log.printf("[%d/%d] %s", n, of, res.report)
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := r.w.ReadCommitted(cctx); err != nil {
		r.log.printf("read committed offsets: %v", err)
	}
	if r.tw != nil {
		if err := r.tw.ReadCommitted(cctx); err != nil {
			r.log.printf("read committed offsets of %s: %v", workload.CTPGroup, err)
		}
	}
	cancel()
	r.steps = append(r.steps, res)
}

// phase runs one phase of a fault and records it.
func (r *runner) phase(ctx context.Context, f fault.Fault, phase string, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	r.rec.Add(history.Event{Type: history.Fault, Fault: f.Name(), Phase: phase, Detail: f.String(), Start: start,
		End: time.Now(), Outcome: outcome(err), Err: errString(err)})
	return err
}

// topicName is the name of the workload's topic i.
func topicName(i int) string { return fmt.Sprintf("chaos-%c", 'a'+i) }

func outcome(err error) history.Outcome {
	if err != nil {
		return history.Failed
	}
	return history.OK
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// finish stops the workload, drains every partition, reads the committed offsets back and checks
// the history.
func (r *runner) finish(ctx context.Context) *results {
	r.log.printf("stopping the workload")
	if err := r.w.Stop(); err != nil {
		r.log.printf("workload: %v", err) // its sends are recorded as indeterminate: not a failure
	}
	if r.tw != nil {
		r.tw.Stop(txnSettle)
	}
	drainStart := time.Now()
	dctx, cancel := context.WithTimeout(ctx, drainTimeout+time.Since(r.log.start)/4)
	n, err := r.w.Drain(dctx)
	cancel()
	if err != nil {
		r.fail("final drain: %v", err)
	}
	r.log.printf("drained %d records in %v", n, time.Since(drainStart).Round(time.Millisecond))
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := r.w.ReadCommitted(cctx); err != nil {
		r.fail("read committed offsets: %v", err)
	}
	cancel()
	var txnStats *workload.TxnStats
	if r.tw != nil {
		r.finishTxn(ctx)
		st := r.tw.Stats()
		txnStats = &st
	}
	if err := r.rec.Close(); err != nil {
		r.fail("history: %v", err)
	}
	events := r.rec.Events()
	return &results{check: checker.Check(events), outages: checker.Unavailability(events), stats: r.w.Stats(),
		partitions: r.w.Partitions(), txn: txnStats}
}

// txnSettle is how long the consume-transform-produce stage goes on after the transactional
// producers stop, to catch up with what they wrote.
const txnSettle = 3 * time.Second

// finishTxn reads the stopped transactional stage's committed offsets back, and drains both
// transactional topics read_committed once no transaction is open on them.
func (r *runner) finishTxn(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	if err := r.tw.ReadCommitted(cctx); err != nil {
		r.fail("read committed offsets of %s: %v", workload.CTPGroup, err)
	}
	cancel()
	start := time.Now()
	// The coordinator aborts what a client left open once its transaction timeout passes.
	dctx, cancel := context.WithTimeout(ctx, drainTimeout+30*time.Second)
	n, err := r.tw.Drain(dctx)
	cancel()
	if err != nil {
		r.fail("final transactional drain: %v", err)
	}
	r.log.printf("drained %d transactional records read_committed in %v", n, time.Since(start).Round(time.Millisecond))
	if st := r.tw.Stats(); st.Committed == 0 {
		r.fail("the transactional workload committed no transaction (%d aborted, %d indeterminate)", st.Aborted, st.Indeterminate)
	}
}

// stopCluster stops every process: agents must hand over and exit 0 on SIGTERM.
func (r *runner) stopCluster() {
	if err := r.c.Close(); err != nil {
		r.fail("shutdown: %v", err)
	}
	if panics := findPanics(filepath.Join(r.cfg.out, "logs")); len(panics) > 0 {
		r.fail("panics in %v", panics)
	}
	if !r.cfg.keep {
		for _, d := range []string{"etcd", "s3"} {
			_ = os.RemoveAll(filepath.Join(r.cfg.out, d))
		}
	}
}

// findPanics lists the logs that hold a Go panic or a fatal runtime error.
func findPanics(dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var found []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		for _, marker := range [][]byte{[]byte("\npanic: "), []byte("\nfatal error: ")} {
			if bytes.Contains(b, marker) {
				found = append(found, e.Name())
				break
			}
		}
	}
	return found
}

// progress prints timestamped lines to stderr and to the run's log.
type progress struct {
	f     *os.File
	w     io.Writer
	start time.Time
}

func newProgress(path string) (*progress, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &progress{f: f, w: io.MultiWriter(os.Stderr, f), start: time.Now()}, nil
}

func (p *progress) printf(format string, args ...any) {
	fmt.Fprintf(p.w, "chaos %7.1fs: %s\n", time.Since(p.start).Seconds(), fmt.Sprintf(format, args...))
}

func (p *progress) close() { _ = p.f.Close() }
