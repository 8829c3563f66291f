package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// suiteOptions are the flags of suite mode.
type suiteOptions struct {
	suite      string // full or short
	jsonPath   string
	bin        string
	window     time.Duration
	profileDir string
	only       string // regexp over the produce workloads
	phases     string // comma-separated: produce, latency, consume, procs
	targets    string // comma-separated: sh-1, sh-3, kfake
	latencyCap float64
	linger     time.Duration
	repeat     int // runs of each produce workload per target, alternating (0: the plan's); the median counts
}

func (o suiteOptions) phase(name string) bool {
	return slices.Contains(strings.Split(o.phases, ","), name)
}

// plan is what one suite runs.
type plan struct {
	throughput    []produceSpec
	latency       produceSpec   // also among throughput: its max rate sets the latency runs' rate
	warm          time.Duration // closed-loop produce before each window
	window        time.Duration
	latWindow     time.Duration
	consumeMiB    int
	consumePasses int        // timed reads of each kind, cold and warm
	targetRepeat  int        // runs of each workload of produceTargets per target (--repeat 0)
	profiles      []shConfig // further one-agent clusters for latency under an S3 profile
	latencyCap    float64    // records/s: the open-loop rate is min(50% of the target's max, latencyCap)
	// wideTargets run the latency workload again on 1,024 partitions at the same fixed rate: S3 PUTs/s
	// and etcd Txns/s at one load, 8 vs 1,024 partitions (at saturation they follow throughput).
	wideTargets []string
	targets     string // default of --targets
	procsIdle   time.Duration
	procsParts  int32
	history     historySpec
	// clearBucket deletes each run's objects after it, so that a full suite does not fill the disk (a
	// short one writes a few GiB, removed with the cluster).
	clearBucket bool
	// txns are the transactions phase's workloads, run on fresh clusters of txnTargets for txnWindow.
	txns       []txnSpec
	txnTargets []string
	txnWindow  time.Duration
}

var latencySpec = produceSpec{size: 1024, partitions: 8, producers: 1, codec: "none"}

// wideSpec is spec on 1,024 partitions.
func wideSpec(spec produceSpec) produceSpec {
	spec.partitions = 1024
	return spec
}

// memoryLimit is the suite's soft heap limit (runtime/debug.SetMemoryLimit).
const memoryLimit = 8 << 30

// defaultLatencyCap bounds the open-loop rate. Past about 40,000 records/s the bench's one sending
// goroutine and the franz-go client, sharing 2 cores with every target, queue records themselves, and
// the figure would measure the client (kfake's own p99 goes to hundreds of ms). And 30,000 records of
// 1 KiB a second (about 31 MiB/s) stay under the default 4 MiB per 100 ms at which flushes start by
// size: these runs measure the flush interval's cadence, and the S3 PUTs and etcd Txns it costs.
const defaultLatencyCap = 30_000

func fullPlan() plan {
	p := plan{latency: latencySpec, warm: time.Second, window: 4 * time.Second, latWindow: 10 * time.Second,
		consumeMiB: 192, consumePasses: consumePasses, procsIdle: 15 * time.Second, procsParts: 1024, latencyCap: defaultLatencyCap,
		history: historySpec{records: 600_000, rate: 20_000, size: 200, partitions: 64, passes: 3},
		targets: "sh-1,sh-3,sh-1-mem,sh-1-sec,kfake", wideTargets: []string{"sh-1", "sh-3"},
		profiles: []shConfig{
			{name: "sh-1", agents: 1, profile: "none", memory: true},
			{name: "sh-1", agents: 1, profile: "none", memory: true, linger: 50 * time.Millisecond},
			{name: "sh-1", agents: 1, flushInterval: 20 * time.Millisecond, profile: "express", memory: true},
			{name: "sh-1", agents: 1, flushInterval: 20 * time.Millisecond, profile: "express", memory: true, linger: 10 * time.Millisecond},
			{name: "sh-1", agents: 1, profile: "standard", memory: true, linger: 50 * time.Millisecond, consume: true},
		}, clearBucket: true,
		txns:       []txnSpec{txnHeadline, {size: 1024, partitions: 8, producers: 8, records: 16}},
		txnTargets: []string{"sh-1", "sh-3", "kfake"}, txnWindow: 5 * time.Second, targetRepeat: 3}
	for _, size := range []int{1024, 100} {
		for _, parts := range []int32{1, 8, 64, 1024} {
			for _, prods := range []int{1, 8} {
				for _, codec := range []string{"none", "zstd"} {
					p.throughput = append(p.throughput, produceSpec{size, parts, prods, codec})
				}
			}
		}
	}
	return p
}

// shortPlan is the CI subset: the headline workload with 1 and 8 producers, and 1,024 partitions once.
func shortPlan() plan {
	return plan{latency: latencySpec, warm: time.Second, window: 2500 * time.Millisecond, latWindow: 2500 * time.Millisecond,
		consumeMiB: 192, consumePasses: 3, procsIdle: 4 * time.Second, procsParts: 1024, latencyCap: defaultLatencyCap,
		history: historySpec{records: 100_000, rate: 20_000, size: 200, partitions: 64, passes: 3},
		targets: "sh-1,sh-3,kfake", wideTargets: []string{"sh-1"},
		throughput: []produceSpec{
			latencySpec,
			eightProducers,
			wideOneProducer,
		},
		profiles: []shConfig{
			{name: "sh-1", agents: 1, flushInterval: 20 * time.Millisecond, profile: "express", memory: true, linger: 10 * time.Millisecond},
		},
		txns: []txnSpec{txnHeadline}, txnTargets: []string{"sh-1", "kfake"}, txnWindow: 4 * time.Second,
	}
}

// txnHeadline is the transactions phase's workload of both suites: four transactional producers, each
// transaction 256 records of 1 KiB round-robin over 8 partitions.
var txnHeadline = txnSpec{size: 1024, partitions: 8, producers: 4, records: 256}

func runSuite(o suiteOptions) error {
	var p plan
	switch o.suite {
	case "full":
		p = fullPlan()
	case "short":
		p = shortPlan()
	default:
		return fmt.Errorf("--suite %q: want full or short", o.suite)
	}
	if o.window > 0 {
		p.window = o.window
	}
	if o.repeat < 0 {
		return fmt.Errorf("--repeat %d: want 0 (the suite's default) or more", o.repeat)
	}
	if o.targets == "" {
		o.targets = p.targets
	}
	if o.latencyCap > 0 {
		p.latencyCap = o.latencyCap
	}
	producerLinger = o.linger
	if o.only != "" {
		re, err := regexp.Compile(o.only)
		if err != nil {
			return fmt.Errorf("--only: %w", err)
		}
		p.throughput = slices.DeleteFunc(p.throughput, func(s produceSpec) bool { return !re.MatchString(s.String()) })
	}
	// kfake keeps every record in memory until its topic is deleted: gigabytes per run at its rates.
	// A soft limit makes the collector return the previous runs' garbage before the heap grows past
	// it, which matters on a machine other work shares.
	debug.SetMemoryLimit(memoryLimit)
	defer suiteSteps.end()
	ctx := context.Background()
	log := hclog.New(&hclog.LoggerOptions{Name: "bench", Level: hclog.Error, Output: os.Stderr})
	rep := newReport(o, p)
	if o.bin == "" && o.phase("procs") {
		dir, err := os.MkdirTemp("", "streamhouse-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		progress("building the streamhouse binary for the agent-process figures")
		if o.bin, err = buildBinary(ctx, dir); err != nil {
			return err
		}
	}
	targets, err := startTargets(ctx, strings.Split(o.targets, ","), log)
	if err != nil {
		return err
	}
	defer func() {
		for _, t := range targets {
			t.Close()
		}
	}()
	s := &suite{ctx: ctx, o: o, p: p, log: log, rep: rep, targets: targets}
	err = s.run()
	suiteSteps.end()
	rep.finish()
	rep.print(os.Stdout)
	if o.jsonPath != "" {
		if werr := rep.writeJSON(o.jsonPath); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	return err
}

func startTargets(ctx context.Context, names []string, log hclog.Logger) ([]target, error) {
	progress("starting %s", strings.Join(names, ", "))
	var out []target
	for _, cfg := range []shConfig{{name: "sh-1", agents: 1}, {name: "sh-3", agents: 3}, {name: "sh-1-mem", agents: 1, memory: true},
		{name: "sh-1-sec", agents: 1, secure: true}} {
		if !slices.Contains(names, cfg.name) {
			continue
		}
		c, err := startSH(ctx, cfg, log)
		if err != nil {
			for _, t := range out {
				t.Close()
			}
			return nil, fmt.Errorf("%s: %w", cfg.name, err)
		}
		out = append(out, c)
	}
	if !slices.Contains(names, "kfake") {
		return out, nil
	}
	k, err := startKfake(ctx)
	if err != nil {
		for _, t := range out {
			t.Close()
		}
		return nil, err
	}
	return append(out, k), nil
}

type suite struct {
	ctx     context.Context
	o       suiteOptions
	p       plan
	log     hclog.Logger
	rep     *report
	targets []target
}

// eightProducers is the headline workload with 8 producers; wideOneProducer is it on 1,024 partitions.
var (
	eightProducers  = produceSpec{1024, 8, 8, "none"}
	wideOneProducer = produceSpec{1024, 1024, 1, "none"}
)

// produceTarget is a produce workload's target ratio to kfake.
type produceTarget struct {
	spec produceSpec
	want float64
}

// produceTargets are the produce workloads with a target ratio to kfake (report.judge). The full suite
// runs each of them targetRepeat times, for a median less at the mercy of the machine than one run.
var produceTargets = []produceTarget{{latencySpec, 1.0}, {eightProducers, 1.5}, {wideOneProducer, 1.0}}

// runs is how many times spec is run on each target: --repeat when given, else the plan's
// targetRepeat for a workload with a target and once for the others.
func (s *suite) runs(spec produceSpec) int {
	if s.o.repeat > 0 {
		return s.o.repeat
	}
	if slices.ContainsFunc(produceTargets, func(t produceTarget) bool { return t.spec == spec }) {
		return max(s.p.targetRepeat, 1)
	}
	return 1
}

// throughput runs spec on every target runs(spec) times, the targets alternating (so that the machine's
// drift over the runs falls on each alike), and returns each target's median run by MiB/s. With more
// than one run, a note lists every run's figure.
func (s *suite) throughput(spec produceSpec) (map[string]throughputResult, error) {
	n := s.runs(spec)
	byTarget := map[string][]throughputResult{}
	for i := range n {
		for _, t := range s.targets {
			run := 0 // the only one
			if n > 1 {
				run = i + 1
				progress("produce %s on %s (run %d of %d)", spec, t.Name(), run, n)
			} else {
				progress("produce %s on %s", spec, t.Name())
			}
			r, err := runThroughput(s.ctx, t, spec, s.p.warm, s.p.window, s.o.profileDir, run)
			if err != nil {
				return nil, fmt.Errorf("produce %s on %s: %w", spec, t.Name(), err)
			}
			if r.failed > 0 {
				s.rep.note("produce %s on %s: %d records failed (first: %v)", spec, t.Name(), r.failed, r.firstErr)
			}
			byTarget[t.Name()] = append(byTarget[t.Name()], r)
			settle()
			if sh, ok := t.(*shCluster); ok && s.p.clearBucket {
				if err := sh.clearBucket(s.ctx); err != nil {
					return nil, err
				}
			}
		}
	}
	res := map[string]throughputResult{}
	for _, t := range s.targets {
		rs := byTarget[t.Name()]
		res[t.Name()] = medianRun(rs)
		if n > 1 {
			figs := make([]string, len(rs))
			for i, r := range rs {
				figs[i] = fmt.Sprintf("%.1f", r.mibps)
			}
			s.rep.note("produce %s on %s: %s MiB/s in %d runs; the median's figures are reported", spec, t.Name(), strings.Join(figs, ", "), n)
		}
	}
	return res, nil
}

// medianRun returns the run of median MiB/s (the lower of the middle two of an even number), with all
// its figures: they were measured together.
func medianRun(runs []throughputResult) throughputResult {
	sorted := slices.Clone(runs)
	slices.SortStableFunc(sorted, func(a, b throughputResult) int { return cmp.Compare(a.mibps, b.mibps) })
	return sorted[(len(sorted)-1)/2]
}

func (s *suite) run() error {
	maxRate := map[string]float64{}
	if !s.o.phase("produce") {
		s.p.throughput = nil
	}
	// The latency workload's throughput run comes first, then the latency runs and the consume runs:
	// they are the figures most sensitive to what earlier runs leave in the process (a larger heap,
	// more garbage to collect, the page cache full of the S3 endpoint's files).
	specs := slices.Clone(s.p.throughput)
	if i := slices.Index(specs, s.p.latency); i > 0 {
		specs = append(append([]produceSpec{s.p.latency}, specs[:i]...), specs[i+1:]...)
	}
	latencyDone := false
	for _, spec := range specs {
		res, err := s.throughput(spec)
		if err != nil {
			return err
		}
		s.rep.addThroughput(spec, res)
		if spec == s.p.latency && s.o.phase("latency") {
			for name, r := range res {
				maxRate[name] = r.recps
			}
			if err := s.latency(maxRate); err != nil {
				return err
			}
			latencyDone = true
			if err := s.consumePhase(); err != nil {
				return err
			}
		}
	}
	if s.o.phase("latency") && !latencyDone {
		return errors.New("the latency phase needs the produce phase's " + s.p.latency.String())
	}
	if !latencyDone {
		if err := s.consumePhase(); err != nil {
			return err
		}
	}
	if s.o.phase("txn") {
		if err := s.txnPhase(); err != nil {
			return fmt.Errorf("transactions: %w", err)
		}
	}
	if s.o.phase("history") {
		h, err := runHistory(s.ctx, s.p.history, s.log)
		if err != nil {
			return fmt.Errorf("history: %w", err)
		}
		s.rep.addHistory(s.p.history, h)
	}
	s.rep.addPeakRSS(peakRSS())
	if !s.o.phase("procs") {
		return nil
	}
	progress("agent processes: %d partitions idle on 3 agents, then %s", s.p.procsParts, eightProducers)
	pr, err := runProcs(s.ctx, s.o.bin, s.p.procsParts, s.p.procsIdle, s.p.warm, s.p.window, s.log)
	if err != nil {
		return fmt.Errorf("agent processes: %w", err)
	}
	s.rep.addProcs(pr)
	return nil
}

// latency runs the open-loop latency workload at half of each target's measured maximum, then on
// one-agent clusters under the plan's S3 profiles.
func (s *suite) latency(maxRate map[string]float64) error {
	res := map[string]latencyResult{}
	for _, t := range s.targets {
		rate := min(maxRate[t.Name()]/2, s.p.latencyCap)
		progress("latency %s at %.0f records/s on %s", s.p.latency, rate, t.Name())
		r, err := runLatency(s.ctx, t, s.p.latency, rate, s.p.warm, s.p.latWindow)
		if err != nil {
			return fmt.Errorf("latency on %s: %w", t.Name(), err)
		}
		res[t.Name()] = r
		settle()
	}
	s.rep.addLatency("", res)
	wide := map[string]latencyResult{}
	for _, t := range s.targets {
		if !slices.Contains(s.p.wideTargets, t.Name()) {
			continue
		}
		spec := wideSpec(s.p.latency)
		progress("latency %s at %.0f records/s on %s", spec, res[t.Name()].rate, t.Name())
		r, err := runLatency(s.ctx, t, spec, res[t.Name()].rate, s.p.warm, s.p.latWindow)
		if err != nil {
			return fmt.Errorf("latency %s on %s: %w", spec, t.Name(), err)
		}
		wide[t.Name()] = r
		settle()
	}
	s.rep.addWide(res, wide)
	for _, cfg := range s.p.profiles {
		c, err := startSH(s.ctx, cfg, s.log)
		if err != nil {
			return fmt.Errorf("%s with S3 profile %s: %w", cfg.name, cfg.profile, err)
		}
		label := fmt.Sprintf("S3 %s on memory, flush %v", cfg.profile, c.agents[0].cfg.FlushInterval)
		saved := producerLinger
		if cfg.linger > 0 {
			// The producers' five requests in flight each wait for a flush: records sent while all five
			// wait are held in the client until one is answered, and wait for the next flush too.
			// Lingering spreads the requests over the flush interval.
			producerLinger = cfg.linger
			label += fmt.Sprintf(", linger %v", cfg.linger)
		}
		progress("produce %s on %s, %s", s.p.latency, c.Name(), label)
		tr, err := runThroughput(s.ctx, c, s.p.latency, s.p.warm, s.p.window, "", 0)
		if err == nil {
			rate := min(tr.recps/2, s.p.latencyCap)
			progress("latency %s at %.0f records/s on %s, %s", s.p.latency, rate, c.Name(), label)
			var lr latencyResult
			if lr, err = runLatency(s.ctx, c, s.p.latency, rate, s.p.warm, s.p.latWindow); err == nil {
				s.rep.addProfile(label, tr, lr)
			}
			if err == nil && cfg.consume {
				progress("consume %d MiB on %s, %s", s.p.consumeMiB, c.Name(), label)
				var cr consumeResult
				if cr, err = runConsume(s.ctx, c, s.p.consumeMiB, s.p.consumePasses, s.log, s.o.profileDir); err == nil {
					s.rep.addProfileConsume(label, cr)
				}
			}
		}
		producerLinger = saved
		c.Close()
		if err != nil {
			return fmt.Errorf("%s, %s: %w", c.Name(), label, err)
		}
	}
	return nil
}

// consumePhase runs the consume phase if it was asked for.
func (s *suite) consumePhase() error {
	if !s.o.phase("consume") {
		return nil
	}
	return s.consume()
}

func (s *suite) consume() error {
	res := map[string]consumeResult{}
	for _, t := range s.targets {
		progress("consume %d MiB on %s", s.p.consumeMiB, t.Name())
		r, err := runConsume(s.ctx, t, s.p.consumeMiB, s.p.consumePasses, s.log, s.o.profileDir)
		if err != nil {
			return fmt.Errorf("consume on %s: %w", t.Name(), err)
		}
		res[t.Name()] = r
		settle()
		if sh, ok := t.(*shCluster); ok {
			if err := sh.clearBucket(s.ctx); err != nil {
				return err
			}
		}
	}
	s.rep.addConsume(res)
	return nil
}

// settle returns the heap a run left behind (kfake keeps every record in memory until its topic is
// deleted) to the OS, so that the next run does not pay for marking gigabytes of garbage, and writes
// the run's files back to disk (the embedded S3 endpoint's objects, etcd's log), so that the next run
// does not share the disk and the cores with the kernel writing back gigabytes of the last one.
func settle() {
	debug.FreeOSMemory()
	syscall.Sync()
}

var suiteStart = time.Now()

// progress tells the operator, on stderr, what runs now (and on a terminal, for how long it has run).
func progress(format string, args ...any) { suiteSteps.begin(fmt.Sprintf(format, args...)) }

// machine describes where the suite ran.
type machine struct {
	CPUs        int     `json:"cpus"`
	CPUModel    string  `json:"cpu_model"`
	GoVersion   string  `json:"go_version"`
	LoadBefore  string  `json:"load_before"`
	LoadAfter   string  `json:"load_after"`
	MemTotalMiB float64 `json:"mem_total_mib"`
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), LoadBefore: loadAvg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				m.CPUModel = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	m.MemTotalMiB = procStatusLine("/proc/meminfo", "MemTotal")
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func procStatusLine(path, field string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return nan
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return nan
}
