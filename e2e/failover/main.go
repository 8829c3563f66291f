// Command failover measures the failover figures of the multi-agent issue, on real processes: three
// "streamhouse agent"s against "streamhouse dev --agents 0" (etcd and S3 only), with a franz-go
// producer writing round-robin to every partition. For each lease TTL it measures
//
//   - the time from kill -9, and from SIGTERM, of an agent until every partition has a leader among
//     the live agents (median and max over --trials, the agents taking turns; the victim is started
//     again with its id and addresses and leadership rebalanced before the next trial). It watches
//     etcd through coord's cache, the view the agents themselves use, so the figure has the
//     resolution of an etcd watch, not of a polling interval;
//   - lease acquisition latency, p50 and p99, from every agent incarnation's
//     streamhouse_lease_acquisition_duration_seconds histogram (estimated within its buckets, as
//     histogram_quantile does);
//   - etcd requests/s over --window, idle and under the producer's load: unary gRPC requests
//     (grpc_server_handled_total) plus messages received on streams (lease keep-alives, watch
//     requests), from the embedded etcd's /metrics.
//
// It is a benchmark, not a test: "make bench-failover" runs it (TRIALS=2 for a short run).
//
//	go run ./e2e/failover --bin bin/streamhouse --trials 10
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/coord"
)

// topicPartitions is the size of each topic the benchmark creates; --partitions is split into them.
const topicPartitions = 100

type config struct {
	bin        string
	trials     int
	ttls       []time.Duration
	partitions int
	rate       int
	trialRate  int
	window     time.Duration
	keep       bool
}

func main() {
	var cfg config
	var ttls string
	flag.StringVar(&cfg.bin, "bin", "bin/streamhouse", "streamhouse binary")
	flag.IntVar(&cfg.trials, "trials", 10, "trials of each fault per lease TTL")
	flag.StringVar(&ttls, "ttls", "10s,3s", "lease TTLs to measure, comma-separated")
	flag.IntVar(&cfg.partitions, "partitions", 1000, "partitions to create (in topics of 100)")
	flag.IntVar(&cfg.rate, "rate", 5000, "records/s the producer sends during the loaded etcd window, round-robin over every partition")
	flag.IntVar(&cfg.trialRate, "trial-rate", 0, "records/s the producer sends during the failover trials (0: idle trials)")
	flag.DurationVar(&cfg.window, "window", 20*time.Second, "window of each etcd request rate")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the data and logs directory")
	flag.Parse()
	for _, s := range strings.Split(ttls, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintln(os.Stderr, "failover: --ttls:", err)
			os.Exit(2)
		}
		cfg.ttls = append(cfg.ttls, d)
	}
	if err := run(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

func run(cfg config) error {
	if _, err := exec.LookPath(cfg.bin); err != nil {
		return fmt.Errorf("--bin: %w (make build)", err)
	}
	var results []*result
	for _, ttl := range cfg.ttls {
		r, err := measure(cfg, ttl)
		if err != nil {
			return fmt.Errorf("lease TTL %v: %w", ttl, err)
		}
		results = append(results, r)
	}
	report(os.Stdout, cfg, results)
	return nil
}

// result is what one lease TTL measured.
type result struct {
	ttl                  time.Duration
	partitions           int // every partition, the internal offsets topic's included
	kill, term           []time.Duration
	acq                  histogram
	idle, busy           map[string]float64 // etcd requests/s by gRPC method
	sent, ok, failed     int                // records of the loaded window
	trialOK, trialFailed int                // records during the trials (with --trial-rate)
	unbalanced           int                // trials that started without balanced leadership
}

// bench is one cluster: dev, three agents, coord's watched view of etcd, and the producer.
type bench struct {
	cfg    config
	ttl    time.Duration
	dir    string
	dev    *devProc
	agents map[string]*agentProc
	coord  *coord.Client
	cache  *coord.Cache
	stop   context.CancelFunc
	wg     sync.WaitGroup
	all    []*agentProc // every incarnation, for their lease acquisition histograms
	load   *load
}

var agentIDs = []string{"a1", "a2", "a3"}

func measure(cfg config, ttl time.Duration) (_ *result, err error) {
	b, err := startBench(cfg, ttl)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, b.close(err != nil)) }()
	r := &result{ttl: ttl}
	progress("lease TTL %v: %d partitions led; etcd requests idle for %v", ttl, b.partitionCount(), cfg.window)
	if r.idle, err = b.etcdRates(); err != nil {
		return nil, err
	}
	b.load = startLoad(b.brokers(), b.topics(), cfg.rate)
	progress("lease TTL %v: etcd requests under %d records/s for %v", ttl, cfg.rate, cfg.window)
	if r.busy, err = b.etcdRates(); err != nil {
		return nil, err
	}
	r.sent, r.ok, r.failed = b.load.stop()
	b.load = nil
	if cfg.trialRate > 0 {
		b.load = startLoad(b.brokers(), b.topics(), cfg.trialRate)
	}
	for i := range cfg.trials {
		for j, sig := range []string{"kill", "term"} {
			victim := agentIDs[(2*i+j)%len(agentIDs)] // each fault hits every agent in turn
			d, balanced, err := b.trial(victim, sig)
			if err != nil {
				return nil, fmt.Errorf("trial %d (%s of %s): %w", i+1, sig, victim, err)
			}
			progress("lease TTL %v: trial %d: %s of %s: every partition led again after %v", ttl, i+1, sig, victim, d.Round(time.Millisecond))
			if !balanced {
				r.unbalanced++
			}
			if sig == "kill" {
				r.kill = append(r.kill, d)
			} else {
				r.term = append(r.term, d)
			}
		}
	}
	if b.load != nil {
		_, r.trialOK, r.trialFailed = b.load.stop()
		b.load = nil
	}
	for _, a := range b.agents {
		if err := b.collect(a); err != nil {
			return nil, err
		}
	}
	r.acq, r.partitions = histogram{}, b.partitionCount()
	for _, a := range b.all {
		r.acq.add(a.acq)
	}
	return r, nil
}

func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func startBench(cfg config, ttl time.Duration) (_ *bench, err error) {
	dir, err := os.MkdirTemp("", "streamhouse-failover-")
	if err != nil {
		return nil, err
	}
	b := &bench{cfg: cfg, ttl: ttl, dir: dir, agents: map[string]*agentProc{}}
	defer func() {
		if err != nil {
			err = errors.Join(err, b.close(true))
		}
	}()
	if b.dev, err = startDev(cfg.bin, dir); err != nil {
		return b, err
	}
	for i, id := range agentIDs {
		a, err := startAgent(cfg.bin, dir, b.dev, id, fmt.Sprintf("z%d", i+1), ttl, 1, "127.0.0.1:0", "127.0.0.1:0")
		if err != nil {
			return b, err
		}
		b.agents[id], b.all = a, append(b.all, a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	if b.coord, err = coord.Connect(ctx, coord.Config{Endpoints: []string{b.dev.etcd}}); err != nil {
		return b, err
	}
	b.cache = b.coord.NewCache(nil)
	b.wg.Go(func() { _ = b.cache.Run(ctx) })
	select {
	case <-b.cache.Ready():
	case <-time.After(startTimeout):
		return b, errors.New("coord cache: not loaded")
	}
	if err := b.createTopics(); err != nil {
		return b, err
	}
	return b, b.waitView(startTimeout, func() string { return b.unbalanced(agentIDs...) })
}

func (b *bench) topics() []string {
	var ts []string
	for i := 0; i*topicPartitions < b.cfg.partitions; i++ {
		ts = append(ts, fmt.Sprintf("failover-%03d", i))
	}
	return ts
}

func (b *bench) createTopics() error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.brokers()...))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for i, t := range b.topics() {
		n := min(topicPartitions, b.cfg.partitions-i*topicPartitions)
		resp, err := adm.CreateTopic(ctx, int32(n), 1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

func (b *bench) brokers() []string {
	var bs []string
	for _, id := range agentIDs {
		bs = append(bs, b.agents[id].kafka)
	}
	return bs
}

// partitionCount is every partition in the view, internal topics included.
func (b *bench) partitionCount() int {
	n := 0
	for _, t := range b.cache.Topics() {
		n += int(t.Partitions)
	}
	return n
}

// unled says which partitions have no leader among the registered agents other than gone; "" when
// every partition has one.
func (b *bench) unled(gone string) string {
	live := map[string]bool{}
	for _, a := range b.cache.Agents() {
		live[a.ID] = a.ID != gone
	}
	var missing []string
	for _, t := range b.cache.Topics() {
		for p := range t.Partitions {
			if l, ok := b.cache.Leader(t.TP(p)); !ok || !live[l.Agent] {
				missing = append(missing, fmt.Sprintf("%s/%d", t.Name, p))
			}
		}
	}
	if len(missing) > 0 {
		return fmt.Sprintf("%d partitions without a live leader, e.g. %v", len(missing), missing[:min(3, len(missing))])
	}
	return ""
}

// agentGroupConfig is the topic config binding a topic to an agent group. Placement balances each
// group's topics apart from the unbound ones (the internal offsets topic is bound to the default group).
const agentGroupConfig = "streamhouse.agent.group"

// unbalanced says why leadership is not spread over exactly ids, each leading ⌊P/N⌋ or ⌈P/N⌉ of the
// P partitions of each placement domain (one agent group's topics, or the unbound ones).
func (b *bench) unbalanced(ids ...string) string {
	if why := b.unled(""); why != "" {
		return why
	}
	led := map[string]map[string]int{} // domain → agent → partitions led
	total := map[string]int{}
	for _, t := range b.cache.Topics() {
		domain := t.Configs[agentGroupConfig]
		if led[domain] == nil {
			led[domain] = map[string]int{}
		}
		for p := range t.Partitions {
			l, _ := b.cache.Leader(t.TP(p))
			led[domain][l.Agent]++
			total[domain]++
		}
	}
	for domain, n := range total {
		lo, hi := n/len(ids), (n+len(ids)-1)/len(ids)
		bad := len(led[domain]) != len(ids)
		for id, k := range led[domain] {
			bad = bad || !slices.Contains(ids, id) || k < lo || k > hi
		}
		if bad {
			return fmt.Sprintf("agent group %q: partitions led %v, want %d..%d for each of %v", domain, led[domain], lo, hi, ids)
		}
	}
	return ""
}

// waitView waits until why, evaluated at each change of the watched view, returns "".
func (b *bench) waitView(timeout time.Duration, why func() string) error {
	deadline := time.After(timeout)
	for {
		changed := b.cache.Changed() // before reading, so that no change slips in between
		reason := why()
		if reason == "" {
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			return fmt.Errorf("not within %v: %s", timeout, reason)
		}
	}
}

// balanceTimeout bounds the wait for balanced leadership before a trial; past it the trial runs
// anyway, counted in the table: a benchmark reports what it saw (before f9b0fdd, commit failures
// during a rebalance under load could leave leadership unbalanced for good; TestClusterJoinUnderLoad).
const balanceTimeout = 20 * time.Second

// trial waits until leadership is balanced, faults victim (kill -9 or SIGTERM), measures the time
// until every partition has a leader among the other agents, then starts the victim again with its
// id and addresses. It reports whether the trial started balanced.
func (b *bench) trial(victim, sig string) (time.Duration, bool, error) {
	balanced := true
	if err := b.waitView(balanceTimeout, func() string { return b.unbalanced(agentIDs...) }); err != nil {
		progress("warning: leadership not balanced before the trial (%v); running it anyway", err)
		balanced = false
		if err := b.waitView(startTimeout, func() string { return b.unled("") }); err != nil {
			return 0, false, fmt.Errorf("before the fault: %w", err)
		}
	}
	a := b.agents[victim]
	if err := b.collect(a); err != nil { // its histogram dies with it
		return 0, balanced, err
	}
	start := time.Now()
	if sig == "kill" {
		_ = a.cmd.Process.Kill()
	} else {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
	}
	err := b.waitView(b.ttl+startTimeout, func() string { return b.unled(victim) })
	took := time.Since(start)
	if err != nil {
		return 0, balanced, err
	}
	if sig == "kill" {
		<-a.done
	} else if err := a.waitExit(); err != nil {
		return 0, balanced, err
	}
	next, err := startAgent(b.cfg.bin, b.dir, b.dev, a.id, a.az, b.ttl, a.incarnation+1, a.kafka, a.http)
	if err != nil {
		return 0, balanced, err
	}
	b.agents[victim], b.all = next, append(b.all, next)
	return took, balanced, nil
}

// collect scrapes an agent incarnation's lease acquisition histogram; the last scrape of each counts,
// so it is taken before the agent is stopped.
func (b *bench) collect(a *agentProc) error {
	s, err := scrape("http://" + a.http + "/metrics")
	if err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	a.acq = s.histogramOf("streamhouse_lease_acquisition_duration_seconds")
	return nil
}

// etcdRates measures etcd's requests/s by gRPC method over the window.
func (b *bench) etcdRates() (map[string]float64, error) {
	url := b.dev.etcd + "/metrics"
	before, err := scrape(url)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	time.Sleep(b.cfg.window) // the measurement window itself
	after, err := scrape(url)
	if err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	rates := map[string]float64{}
	for _, kind := range []struct{ metric, typ string }{
		{"grpc_server_handled_total", "unary"},
		{"grpc_server_msg_received_total", "bidi_stream"},
	} {
		a := after.sumBy(kind.metric, "grpc_method", "grpc_type", kind.typ)
		bf := before.sumBy(kind.metric, "grpc_method", "grpc_type", kind.typ)
		for m, v := range a {
			if d := v - bf[m]; d > 0 {
				rates[m] += d / secs
			}
		}
	}
	return rates, nil
}

// close stops the producer, the agents (SIGTERM; at once when abort), the cache and dev, and removes
// the directory unless --keep.
func (b *bench) close(abort bool) error {
	var errs []error
	if b.load != nil {
		b.load.stop()
	}
	for _, a := range b.agents {
		if abort {
			a.kill()
		} else if err := a.terminate(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.stop != nil {
		b.stop()
		b.wg.Wait()
		_ = b.coord.Close()
	}
	if b.dev != nil {
		if err := b.dev.terminate(); err != nil {
			errs = append(errs, err)
		}
	}
	if b.cfg.keep || abort {
		fmt.Fprintf(os.Stderr, "logs kept in %s\n", b.dir)
	} else {
		_ = os.RemoveAll(b.dir)
	}
	return errors.Join(errs...)
}

// load is a franz-go producer (idempotent, acks=all) sending rate records/s of 100 bytes,
// round-robin over topics and their partitions.
type load struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu               sync.Mutex
	sent, ok, failed int
	errs             map[string]int // failures by error
}

func startLoad(brokers, topics []string, rate int) *load {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()),
		kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		panic(err) // only invalid options fail NewClient
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{cl: cl, cancel: cancel, errs: map[string]int{}}
	value := []byte(strings.Repeat("x", 100))
	l.wg.Go(func() {
		const tick = 10 * time.Millisecond
		t := time.NewTicker(tick)
		defer t.Stop()
		perTick := max(1, rate/int(time.Second/tick))
		for i := 0; ; {
			for range perTick {
				l.mu.Lock()
				l.sent++
				l.mu.Unlock()
				cl.Produce(context.Background(), &kgo.Record{Topic: topics[i%len(topics)], Value: value}, l.done) // not ctx: cancelling it would fail what is buffered
				i++
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return l
}

func (l *load) done(_ *kgo.Record, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failed++
		l.errs[err.Error()]++
	} else {
		l.ok++
	}
}

// stop ends producing, waits up to a minute for what is buffered, and returns the counts.
func (l *load) stop() (sent, ok, failed int) {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = l.cl.Flush(ctx)
		l.cl.Close()
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	for e, n := range l.errs {
		progress("producer: %d records failed: %s", n, e)
	}
	return l.sent, l.ok, l.failed
}

// report prints the tables.
func report(w *os.File, cfg config, rs []*result) {
	load := "idle"
	if cfg.trialRate > 0 {
		load = fmt.Sprintf("a franz-go producer at %d records/s round-robin over every partition", cfg.trialRate)
	}
	fmt.Fprintf(w, "\nFailover: 3 agents (a1..a3, one zone each), %d partitions created plus the internal offsets topic; "+
		"%d trials of each fault per TTL, the agents in turn; trials %s\n\n", cfg.partitions, cfg.trials, load)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "lease TTL\tpartitions\tfault\tevery partition led again: median\tmax\ttrials started unbalanced")
	for _, r := range rs {
		for _, f := range []struct {
			name string
			ds   []time.Duration
		}{{"kill -9", r.kill}, {"SIGTERM", r.term}} {
			med, mx := summary(f.ds)
			fmt.Fprintf(tw, "%v\t%d\t%s\t%v\t%v\t%d\n", r.ttl, r.partitions, f.name, med.Round(time.Millisecond),
				mx.Round(time.Millisecond), r.unbalanced)
		}
	}
	tw.Flush()
	for _, r := range rs {
		if cfg.trialRate > 0 {
			fmt.Fprintf(w, "lease TTL %v: during the trials %d records acknowledged, %d failed\n", r.ttl, r.trialOK, r.trialFailed)
		}
	}

	fmt.Fprintf(w, "\nLease acquisition (streamhouse_lease_acquisition_duration_seconds, every agent incarnation; "+
		"estimated within the histogram's buckets)\n\n")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "lease TTL\tacquisitions\tp50\tp99")
	for _, r := range rs {
		fmt.Fprintf(tw, "%v\t%.0f\t%s\t%s\n", r.ttl, r.acq.count(), ms(r.acq.quantile(0.5)), ms(r.acq.quantile(0.99)))
	}
	tw.Flush()

	fmt.Fprintf(w, "\netcd requests/s (unary gRPC requests handled + messages received on streams), over %v each\n\n", cfg.window)
	methods := map[string]bool{}
	for _, r := range rs {
		for m := range r.idle {
			methods[m] = true
		}
		for m := range r.busy {
			methods[m] = true
		}
	}
	cols := slices.Sorted(maps.Keys(methods))
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "lease TTL\tload\ttotal\t%s\n", strings.Join(cols, "\t"))
	for _, r := range rs {
		for _, row := range []struct {
			name  string
			rates map[string]float64
		}{{"idle", r.idle}, {fmt.Sprintf("%d rec/s", cfg.rate), r.busy}} {
			total := 0.0
			var cells []string
			for _, m := range cols {
				total += row.rates[m]
				cells = append(cells, fmt.Sprintf("%.1f", row.rates[m]))
			}
			fmt.Fprintf(tw, "%v\t%s\t%.1f\t%s\n", r.ttl, row.name, total, strings.Join(cells, "\t"))
		}
	}
	tw.Flush()
	for _, r := range rs {
		fmt.Fprintf(w, "lease TTL %v: the loaded window's producer: %d records sent, %d acknowledged, %d failed\n",
			r.ttl, r.sent, r.ok, r.failed)
	}
}

func ms(seconds float64) string {
	if math.IsNaN(seconds) {
		return "-"
	}
	return fmt.Sprintf("%.2f ms", seconds*1000)
}
