package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/coord"
	termprogress "github.com/streamhouse/streamhouse/internal/progress"
)

// soakTopic is the topic the soak creates; the data directory is its own, so the name is free.
const soakTopic = "soak"

// flushTimeout bounds the wait for the last records' acknowledgements after the load ends.
const flushTimeout = 2 * time.Minute

// report is everything the run measured; --json writes it.
type report struct {
	Config struct {
		Agents       int      `json:"agents"`
		Partitions   int      `json:"partitions"`
		Rate         int      `json:"rate"`
		RecordSize   int      `json:"record_size"`
		DurationS    float64  `json:"duration_s"`
		IntervalS    float64  `json:"interval_s"`
		RestartCheck bool     `json:"restart_check"`
		DevArgs      []string `json:"dev_args,omitempty"`
		AgentProcess bool     `json:"agent_process"`
		AgentArgs    []string `json:"agent_args,omitempty"`
	} `json:"config"`
	Retention retentionUsed  `json:"retention"`
	Produce   produceStats   `json:"produce"`
	Samples   []sample       `json:"samples"`
	Summary   summary        `json:"summary"`
	Restart   *restartResult `json:"restart,omitempty"`
	Read      *readStats     `json:"read,omitempty"`
	Check     *checkResult   `json:"check,omitempty"`
}

func run(cfg config, w io.Writer) (err error) {
	runDir, err := os.MkdirTemp("", "streamhouse-soak-")
	if err != nil {
		return err
	}
	defer func() {
		if err == nil && !cfg.keep {
			_ = os.RemoveAll(runDir)
			return
		}
		fmt.Fprintf(w, "data directory and dev logs kept in %s\n", runDir)
	}()
	var rep report
	rep.Config.Agents, rep.Config.Partitions, rep.Config.Rate, rep.Config.RecordSize = cfg.agents, cfg.partitions, cfg.rate, cfg.size
	rep.Config.DurationS, rep.Config.IntervalS, rep.Config.RestartCheck, rep.Config.DevArgs =
		cfg.duration.Seconds(), cfg.interval.Seconds(), cfg.restartCheck, cfg.devArgs
	rep.Config.AgentProcess, rep.Config.AgentArgs = cfg.agentProcess, cfg.agentArgs
	err = soak(cfg, w, runDir, &rep)
	if cfg.jsonPath != "" {
		err = errors.Join(err, writeJSON(cfg.jsonPath, &rep))
	}
	return err
}

// soakRun is one run: its processes (the measured one is replaced by the restart check), the ledger
// and the report.
type soakRun struct {
	cfg    config
	w      io.Writer
	runDir string
	dev    *devProc // the process measured: dev, or with --agent-process the agent
	infra  *devProc // with --agent-process, dev serving etcd and S3; else nil
	led    *ledger
	rep    *report
}

func soak(cfg config, w io.Writer, runDir string, rep *report) error {
	ctx := context.Background()
	c, err := startCluster(cfg, runDir, "dev", filepath.Join(runDir, "data"))
	if err != nil {
		return err
	}
	r := &soakRun{cfg: cfg, w: w, runDir: runDir, dev: c.measured, infra: c.infra, led: &ledger{}, rep: rep}
	defer func() { cluster{measured: r.dev, infra: r.infra}.kill() }()
	if err := r.measure(ctx); err != nil {
		return err
	}
	return r.check(ctx)
}

// measure creates the topic and runs the load, sampling, then prints the table.
func (r *soakRun) measure(ctx context.Context) error {
	s, err := newSampler(ctx, r.dev, coord.DefaultPrefix)
	if err != nil {
		return err
	}
	defer s.close()
	parts := int32(r.cfg.partitions)
	if r.rep.Retention, err = createTopic(ctx, r.dev.kafka, soakTopic, parts, r.cfg.retention); err != nil {
		return err
	}
	if err := s.setTopic(ctx, soakTopic, parts); err != nil {
		return err
	}
	r.printHeader()
	if err := r.load(ctx, s); err != nil {
		return err
	}
	r.rep.Summary = summarize(r.rep.Samples, figures())
	fmt.Fprintln(r.w)
	r.rep.Summary.print(r.w, figures())
	fmt.Fprintln(r.w)
	return nil
}

func (r *soakRun) printHeader() {
	cfg := r.cfg
	var extra string
	if len(cfg.devArgs) > 0 {
		extra = " (" + strings.Join(cfg.devArgs, " ") + ")"
	}
	fmt.Fprintf(r.w, "soak: streamhouse dev with %d agent(s)%s; topic %s: %d partitions; %d records/s of %d B, one producer, "+
		"no linger, round-robin, open loop, for %v; a sample every %v\n", cfg.agents, extra, soakTopic,
		cfg.partitions, cfg.rate, cfg.size, cfg.duration, cfg.interval)
	if cfg.agentProcess {
		fmt.Fprintf(r.w, "the agent runs as a process of its own (%s); RSS and the Go heap are its alone, etcd and S3 run in dev\n",
			strings.Join(append([]string{"agent"}, cfg.agentArgs...), " "))
	}
	fmt.Fprintf(r.w, "retention: %s\n", r.rep.Retention)
}

// check runs the restart check (when asked for) and the end check, and fails on an anomaly.
func (r *soakRun) check(ctx context.Context) error {
	if r.cfg.restartCheck {
		nd, res, err := restart(ctx, r.cfg, r.runDir, cluster{measured: r.dev, infra: r.infra}, soakTopic)
		if nd != nil {
			r.dev = nd
		}
		r.rep.Restart = &res
		if err != nil {
			return err
		}
	}
	if err := endCheck(ctx, r.cfg, r.w, r.dev, r.led, r.rep); err != nil {
		return err
	}
	if err := (cluster{measured: r.dev, infra: r.infra}).terminate(); err != nil {
		return err
	}
	if r.rep.Restart != nil {
		if err := measureFresh(r.cfg, r.runDir, r.rep.Restart); err != nil {
			return err
		}
		r.rep.Restart.print(r.w)
	}
	if r.rep.Check.anomalies() > 0 {
		return fmt.Errorf("%w: %s", errAnomaly, r.rep.Check.summary())
	}
	return nil
}

// load runs the producer for the duration, sampling every interval, and takes the last sample once
// every record sent has been answered.
func (r *soakRun) load(ctx context.Context, s *sampler) error {
	p, err := newProducer(r.dev.kafka, soakTopic, r.led, r.cfg.rate, r.cfg.size, int32(r.cfg.partitions))
	if err != nil {
		return err
	}
	defer p.close()
	// On a terminal, a status line between the samples says the load still moves.
	status := termprogress.New(os.Stderr)
	defer status.Clear()
	take := func(elapsed time.Duration) {
		status.Clear()
		smp, err := s.take(ctx, elapsed, p.acked.Load())
		r.rep.Samples = append(r.rep.Samples, smp)
		progressLine(r.w, smp, int64(r.led.len())-p.acked.Load()-p.failed.Load(), p.failed.Load())
		if err != nil {
			fmt.Fprintf(r.w, "  sampling: %v\n", err)
		}
	}
	take(0)
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, r.cfg.duration)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.run(lctx, flushTimeout)
	}()
	t := time.NewTicker(r.cfg.interval)
	defer t.Stop()
	var statusTick <-chan time.Time
	if status.On() {
		st := time.NewTicker(time.Second)
		defer st.Stop()
		statusTick = st.C
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-statusTick:
			status.Set("soak: %s of %s: %s acked, %s in flight, %s failed", time.Since(start).Round(time.Second), r.cfg.duration,
				thousands(p.acked.Load()), thousands(int64(r.led.len())-p.acked.Load()-p.failed.Load()), thousands(p.failed.Load()))
		case <-t.C:
			if r.dev.exited() {
				cancel()
				<-done
				return fmt.Errorf("%s exited during the run (%v); its log:\n%s", r.dev.name, r.dev.cmd.ProcessState, r.dev.tail())
			}
			take(time.Since(start))
		}
	}
	take(time.Since(start))
	r.rep.Produce = p.stats(r.led, time.Since(start))
	r.rep.Produce.print(r.w, r.cfg.duration)
	return nil
}

// progressLine is one line per sample: the figures that show growth at a glance.
func progressLine(w io.Writer, s sample, inFlight, failed int64) {
	fmt.Fprintf(w, "%8s  acked %s (in flight %s, failed %s)  etcd %s keys, db %s (in use %s)  rss %s  s3 %s objects, %s\n",
		(time.Duration(s.ElapsedS) * time.Second).String(), thousands(s.Acked), thousands(inFlight), thousands(failed),
		count(s.EtcdKeys), mib(s.EtcdDBSize), mib(s.EtcdDBInUse), mib(s.RSS), count(s.S3.Objects), mib(s.S3.Bytes))
}

func count(n int64) string {
	if n < 0 {
		return "-"
	}
	return thousands(n)
}

// endCheck reads the topic back and holds it against the ledger.
func endCheck(ctx context.Context, cfg config, w io.Writer, d *devProc, led *ledger, rep *report) error {
	chk := newChecker(led)
	window := rep.Retention.window()
	fmt.Fprintf(w, "end check: reading every partition from its log start to its end\n")
	st, err := readBack(ctx, d.kafka, soakTopic, int32(cfg.partitions), chk, cfg.readStall)
	rep.Read = &st
	if err != nil {
		return fmt.Errorf("end check: %w", err)
	}
	cutoff := int64(math.MinInt64)
	if window > 0 {
		// A record is inside retention if it was younger than the window when the read ended, so no
		// retention pass during the read could have removed it; a second of margin absorbs the
		// millisecond rounding of timestamps.
		cutoff = time.Now().Add(-window).Add(time.Second).UnixMilli()
	}
	res := chk.finish(cutoff)
	rep.Check = &res
	printCheck(w, st, res, window)
	return nil
}

func printCheck(w io.Writer, st readStats, res checkResult, window time.Duration) {
	fmt.Fprintf(w, "end check: read %s records (%.1f MiB) in %.1fs (%.0f records/s, %.2f MiB/s); log start offsets sum %s, "+
		"end offsets sum %s; %s fetch errors", thousands(st.Records), float64(st.Bytes)/(1<<20), st.Seconds,
		float64(st.Records)/max(st.Seconds, 1e-9), float64(st.Bytes)/(1<<20)/max(st.Seconds, 1e-9), thousands(st.StartOffsets),
		thousands(st.EndOffsets), thousands(st.FetchErrs))
	if st.FirstErr != "" {
		fmt.Fprintf(w, " (first: %s)", st.FirstErr)
	}
	fmt.Fprintln(w)
	win := "no retention: every acknowledged record is required"
	if window > 0 {
		win = fmt.Sprintf("retention window %v", window)
	}
	fmt.Fprintf(w, "end check: %s; %s acknowledged, %s inside the window (each must be read once at its offset), "+
		"%s outside it and gone (expected), %s outside it and still there; %s read whose produce failed or went unanswered "+
		"(allowed); %s sent, %s failed, %s unanswered\n", win, thousands(res.Acked), thousands(res.Required), thousands(res.Gone),
		thousands(res.KeptOutside), thousands(res.UnackedRead), thousands(res.Sent), thousands(res.Failed), thousands(res.Unanswered))
	if res.SkippedGaps > 0 {
		fmt.Fprintf(w, "end check: %s offset ranges skipped holding no record inside the window (a read reset to a log start "+
			"retention moved meanwhile)\n", thousands(res.SkippedGaps))
	}
	if res.anomalies() == 0 {
		fmt.Fprintln(w, "end check: no anomalies")
		return
	}
	fmt.Fprintf(w, "end check: ANOMALIES: %s\n", res.summary())
	for _, a := range res.sortedExamples() {
		fmt.Fprintf(w, "  %s\n", a)
	}
}

func writeJSON(path string, rep *report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
