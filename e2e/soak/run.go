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
)

// soakTopic is the topic the soak creates; the data directory is its own, so the name is free.
const soakTopic = "soak"

// flushTimeout bounds the wait for the last records' acknowledgements after the load ends.
const flushTimeout = 2 * time.Minute

// produceStats is the producer's account.
type produceStats struct {
	Sent     int64   `json:"sent"`
	Acked    int64   `json:"acked"`
	Failed   int64   `json:"failed"`
	Seconds  float64 `json:"seconds"`
	MaxLag   int64   `json:"max_schedule_lag_records"`
	FirstErr string  `json:"first_error,omitempty"`
}

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
	err = soak(cfg, w, runDir, &rep)
	if cfg.jsonPath != "" {
		err = errors.Join(err, writeJSON(cfg.jsonPath, &rep))
	}
	return err
}

func soak(cfg config, w io.Writer, runDir string, rep *report) error {
	ctx := context.Background()
	d, err := startDev(cfg.bin, runDir, "dev", filepath.Join(runDir, "data"), cfg.agents, cfg.devArgs)
	if err != nil {
		return err
	}
	defer func() {
		if !d.exited() {
			d.kill()
		}
	}()
	s, err := newSampler(ctx, d, coord.DefaultPrefix)
	if err != nil {
		return err
	}
	defer s.close()
	if rep.Retention, err = createTopic(ctx, d.kafka, soakTopic, int32(cfg.partitions), cfg.retention); err != nil {
		return err
	}
	if err := s.setTopic(ctx, soakTopic, int32(cfg.partitions)); err != nil {
		return err
	}
	var extra string
	if len(cfg.devArgs) > 0 {
		extra = " (" + strings.Join(cfg.devArgs, " ") + ")"
	}
	fmt.Fprintf(w, "soak: streamhouse dev with %d agent(s)%s; topic %s: %d partitions; %d records/s of %d B, one producer, "+
		"no linger, round-robin, open loop, for %v; a sample every %v\n", cfg.agents, extra, soakTopic,
		cfg.partitions, cfg.rate, cfg.size, cfg.duration, cfg.interval)
	fmt.Fprintf(w, "retention: %s\n", rep.Retention)
	led := &ledger{}
	if err := load(ctx, cfg, w, d, s, led, rep); err != nil {
		return err
	}
	rep.Summary = summarize(rep.Samples, figures())
	fmt.Fprintln(w)
	rep.Summary.print(w, figures())
	fmt.Fprintln(w)
	if cfg.restartCheck {
		nd, r, err := restart(ctx, cfg, runDir, d, soakTopic)
		if nd != nil {
			d = nd
		}
		rep.Restart = &r
		if err != nil {
			return err
		}
	}
	if err := endCheck(ctx, cfg, w, d, led, rep); err != nil {
		return err
	}
	if err := d.terminate(); err != nil {
		return err
	}
	if rep.Restart != nil {
		if err := measureFresh(cfg, runDir, rep.Restart); err != nil {
			return err
		}
		rep.Restart.print(w)
	}
	if rep.Check.anomalies() > 0 {
		return fmt.Errorf("%w: %s", errAnomaly, rep.Check.summary())
	}
	return nil
}

// load runs the producer for the duration, sampling every interval, and takes the last sample once
// every record sent has been answered.
func load(ctx context.Context, cfg config, w io.Writer, d *devProc, s *sampler, led *ledger, rep *report) error {
	p, err := newProducer(d.kafka, soakTopic, led, cfg.rate, cfg.size, int32(cfg.partitions))
	if err != nil {
		return err
	}
	defer p.close()
	take := func(elapsed time.Duration) {
		smp, err := s.take(ctx, elapsed, p.acked.Load())
		rep.Samples = append(rep.Samples, smp)
		progressLine(w, smp, int64(led.len())-p.acked.Load()-p.failed.Load(), p.failed.Load())
		if err != nil {
			fmt.Fprintf(w, "  sampling: %v\n", err)
		}
	}
	take(0)
	start := time.Now()
	lctx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.run(lctx, flushTimeout)
	}()
	t := time.NewTicker(cfg.interval)
	defer t.Stop()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-t.C:
			if d.exited() {
				cancel()
				<-done
				return fmt.Errorf("dev exited during the run (%v); its log:\n%s", d.cmd.ProcessState, d.tail())
			}
			take(time.Since(start))
		}
	}
	take(time.Since(start))
	rep.Produce = produceStats{Sent: int64(led.len()), Acked: p.acked.Load(), Failed: p.failed.Load(),
		Seconds: time.Since(start).Seconds(), MaxLag: p.maxLag.Load()}
	if err := p.err(); err != nil {
		rep.Produce.FirstErr = err.Error()
	}
	pr := rep.Produce
	fmt.Fprintf(w, "produce: %s sent, %s acknowledged, %s failed, %s unanswered in %.0fs (%.0f acknowledged/s); "+
		"the sender was at most %s records behind its schedule\n", thousands(pr.Sent), thousands(pr.Acked), thousands(pr.Failed),
		thousands(pr.Sent-pr.Acked-pr.Failed), pr.Seconds, float64(pr.Acked)/cfg.duration.Seconds(), thousands(pr.MaxLag))
	if pr.FirstErr != "" {
		fmt.Fprintf(w, "produce: first error: %s\n", pr.FirstErr)
	}
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
