package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"
)

// The restart check: an agent must not need memory or start-up time that grow with history. dev (or,
// with --agent-process, the agent alone) is stopped gracefully and started again on the same data
// directory; its resident memory once ready is set beside a fresh one's (empty data directory),
// measured the same way.

// restartResult is what the restart check measured.
type restartResult struct {
	StopS float64 `json:"stop_s"` // SIGTERM to exit
	// ReadyS is the time from starting dev again until every agent's /readyz answered 200, RSSReady
	// its VmRSS then; LedS and RSSLed the same once every partition of the topic had a leader.
	ReadyS   float64 `json:"ready_s"`
	RSSReady int64   `json:"rss_ready_bytes"`
	LedS     float64 `json:"led_s"`
	RSSLed   int64   `json:"rss_led_bytes"`
	// FreshReadyS and FreshRSS are a fresh dev's, with the same flags on an empty data directory.
	FreshReadyS float64 `json:"fresh_ready_s"`
	FreshRSS    int64   `json:"fresh_rss_bytes"`
}

// restart stops c's measured process and starts it again (dev on its data directory, or the agent
// against the same dev); the new process replaces it.
func restart(ctx context.Context, cfg config, runDir string, c cluster, topic string) (*devProc, restartResult, error) {
	var r restartResult
	d := c.measured
	t0 := time.Now()
	if err := d.terminate(); err != nil {
		return nil, r, fmt.Errorf("stopping %s: %w", d.name, err)
	}
	r.StopS = time.Since(t0).Seconds()
	var nd *devProc
	var err error
	if c.infra != nil {
		nd, err = startAgentProc(cfg.bin, runDir, "agent-restarted", c.infra, cfg.agentArgs)
	} else {
		nd, err = startDev(cfg.bin, runDir, "dev-restarted", d.dataDir, cfg.agents, cfg.devArgs)
	}
	if err != nil {
		return nil, r, fmt.Errorf("restarting %s: %w", d.name, err)
	}
	r.ReadyS, r.RSSReady = time.Since(nd.started).Seconds(), readMem(nd.pid()).rss
	if err := awaitLeaders(ctx, nd.kafka, topic, int32(cfg.partitions)); err != nil {
		return nd, r, fmt.Errorf("after the restart: %w", err)
	}
	r.LedS, r.RSSLed = time.Since(nd.started).Seconds(), readMem(nd.pid()).rss
	return nd, r, nil
}

// measureFresh starts a dev (and agent) on an empty data directory, measures it once ready, and stops
// it.
func measureFresh(cfg config, runDir string, r *restartResult) error {
	dir, err := os.MkdirTemp(runDir, "fresh-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c, err := startCluster(cfg, runDir, "dev-fresh", dir)
	if err != nil {
		return fmt.Errorf("fresh dev: %w", err)
	}
	d := c.measured
	r.FreshReadyS, r.FreshRSS = time.Since(d.started).Seconds(), readMem(d.pid()).rss
	return c.terminate()
}

// restartTarget is issue 14's target for the restart figure: RSS after a restart within 1.5× of a
// fresh agent's. The soak prints the ratio; it does not fail on it.
const restartTarget = 1.5

func (r restartResult) print(w io.Writer) {
	fmt.Fprintf(w, "restart: SIGTERM stop %.2fs; started again on the same data dir: ready after %.1fs, RSS %s; "+
		"every partition led after %.1fs, RSS %s\n", r.StopS, r.ReadyS, mib(r.RSSReady), r.LedS, mib(r.RSSLed))
	if r.FreshRSS <= 0 {
		return
	}
	fmt.Fprintf(w, "restart: fresh (empty data dir): ready after %.1fs, RSS %s; restarted/fresh %.2fx when ready, "+
		"%.2fx once led (issue 14's target: within %.1fx)\n", r.FreshReadyS, mib(r.FreshRSS),
		float64(r.RSSReady)/float64(r.FreshRSS), float64(r.RSSLed)/float64(r.FreshRSS), restartTarget)
}

func mib(b int64) string {
	if b < 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}
