// Command soak runs issue 14's load against "streamhouse dev" for a long time and measures whether
// what the cluster holds follows what it retains or how long it has run: etcd keys (by directory)
// and database size, the dev process's resident memory, and the objects and bytes in S3.
//
// It starts dev (a process, every listener on a free port, a temporary data directory), creates a
// topic of --partitions partitions with retention.ms from --retention, and sends --rate records/s of
// --record-size bytes from one franz-go producer, no linger, round-robin, open loop, for --duration.
// Every --interval it samples the figures and prints one progress line; at the end it prints a table
// of them at the start, middle and end of the run with their growth per minute over the second half,
// then reads every partition back from its log start and checks each acknowledged record inside the
// retention window is there exactly once at the offset its acknowledgement reported. With
// --restart-check it first stops dev, starts it again on the same data directory and compares its
// memory with a fresh dev's.
//
// It is a benchmark: it prints figures and fails only on an anomaly of the end check or a failure
// to run. "make soak" (DURATION, default 30m) and "make soak-short" (CI) run it; docs/BENCHMARKS.md
// says how to read it.
//
//	go run ./e2e/soak --bin bin/streamhouse --duration 30m --retention 5m --restart-check
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
)

// config is the soak's flags.
type config struct {
	bin          string
	agents       int
	partitions   int
	rate         int
	size         int
	duration     time.Duration
	interval     time.Duration
	retention    time.Duration
	restartCheck bool
	jsonPath     string
	keep         bool
	devArgs      []string
	agentProcess bool
	agentArgs    []string
	readStall    time.Duration
}

// errAnomaly marks a run whose end check found anomalies.
var errAnomaly = errors.New("the end check found anomalies")

func main() {
	var cfg config
	var devArgs, agentArgs string
	flag.StringVar(&cfg.bin, "bin", "bin/streamhouse", "the streamhouse `binary`")
	flag.IntVar(&cfg.agents, "agents", 1, "agents dev runs (its --agents)")
	flag.IntVar(&cfg.partitions, "partitions", 64, "partitions of the topic")
	flag.IntVar(&cfg.rate, "rate", 2000, "records/s the producer sends, open loop")
	flag.IntVar(&cfg.size, "record-size", 200, fmt.Sprintf("record value `bytes` (at least %d)", minRecordSize))
	flag.DurationVar(&cfg.duration, "duration", 30*time.Minute, "how long the producer sends")
	flag.DurationVar(&cfg.interval, "interval", 10*time.Second, "time between samples (and progress lines)")
	flag.DurationVar(&cfg.retention, "retention", 5*time.Minute, "the topic's retention.ms; 0 creates it without retention.ms "+
		"(a cluster that refuses retention.ms gets the topic without it, and the output says so)")
	flag.BoolVar(&cfg.restartCheck, "restart-check", false, "at the end, restart dev on its data directory and compare its RSS with a fresh dev's")
	flag.StringVar(&cfg.jsonPath, "json", "", "also write every sample, the table and the results to this `file`")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the data directory and dev's logs (kept anyway when the run fails)")
	flag.StringVar(&devArgs, "dev-args", "", "more `flags` for streamhouse dev, space-separated (e.g. '--flush-interval 50ms')")
	flag.BoolVar(&cfg.agentProcess, "agent-process", false, "run dev with --agents 0 and the agent as a process of its own "+
		"(with --agents 1 only): RSS is then the agent's alone, and the restart check restarts the agent only")
	flag.StringVar(&agentArgs, "agent-args", "", "more `flags` for the agent process with --agent-process, space-separated")
	flag.DurationVar(&cfg.readStall, "read-stall", 2*time.Minute, "the end check gives up on partitions after reading nothing for this long")
	flag.Parse()
	cfg.devArgs, cfg.agentArgs = strings.Fields(devArgs), strings.Fields(agentArgs)
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	if err := run(cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

func (c config) validate() error {
	switch {
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q", flag.Args())
	case c.agents < 1:
		return errors.New("--agents must be at least 1")
	case c.agentProcess && c.agents != 1:
		return errors.New("--agent-process runs one agent: --agents must be 1")
	case !c.agentProcess && len(c.agentArgs) > 0:
		return errors.New("--agent-args needs --agent-process")
	case c.partitions < 1:
		return errors.New("--partitions must be at least 1")
	case c.rate < 1:
		return errors.New("--rate must be at least 1")
	case c.size < minRecordSize:
		return fmt.Errorf("--record-size must be at least %d", minRecordSize)
	case c.duration <= 0 || c.interval <= 0 || c.readStall <= 0:
		return errors.New("--duration, --interval and --read-stall must be positive")
	case c.retention < 0:
		return errors.New("--retention must not be negative")
	}
	if _, err := os.Stat(c.bin); err != nil {
		return fmt.Errorf("--bin: %w (make build)", err)
	}
	return nil
}
