package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// Defaults of Config.
const (
	DefaultProducers    = 3
	DefaultRate         = 150 // records/s over every producer
	DefaultGroupMembers = 2
	DefaultChurn        = 15 * time.Second
	flushTimeout        = 60 * time.Second // for what producers hold when they stop
	consumerStop        = 30 * time.Second
)

// Groups are the consumer groups of the workload.
var Groups = []string{"chaos-manual", "chaos-auto"}

// Config says what traffic to run.
type Config struct {
	Seeds      func() []string // Kafka addresses to bootstrap from
	Topics     []string
	Partitions int
	Producers  int // default DefaultProducers
	Rate       int // records/s over every producer; default DefaultRate
	// RecordTimeout, when set, is the delivery deadline of the last producer's records: a send that
	// could not even be written in time fails, definitely (franz-go's idempotent producer never fails
	// a record a request of which may have been written), and the checker must never read it.
	RecordTimeout time.Duration
	GroupMembers  int           // per group; default DefaultGroupMembers
	Churn         time.Duration // one group member leaves and a new one joins this often; <0: never
	Seed          uint64
	Recorder      *history.Recorder
	Logf          func(format string, args ...any)
}

// Validate fills in defaults and rejects what cannot work.
func (cfg *Config) Validate() error {
	if cfg.Seeds == nil || len(cfg.Topics) == 0 || cfg.Partitions <= 0 || cfg.Recorder == nil {
		return errors.New("workload: Seeds, Topics, Partitions and Recorder are required")
	}
	if cfg.Producers <= 0 {
		cfg.Producers = DefaultProducers
	}
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.GroupMembers <= 0 {
		cfg.GroupMembers = DefaultGroupMembers
	}
	if cfg.Churn == 0 {
		cfg.Churn = DefaultChurn
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return nil
}

// Workload is running traffic.
type Workload struct {
	cfg       Config
	tps       []history.TP
	producers []*producer
	assign    *assignConsumer
	groups    []*groupMember
	rng       *rand.Rand

	cancelConsumers context.CancelFunc
	cancelChurn     context.CancelFunc
	wg              sync.WaitGroup // consumers and churn

	acks *ackTracker
}

// New validates cfg; it starts nothing.
func New(cfg Config) (*Workload, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	w := &Workload{cfg: cfg, acks: newAckTracker(), rng: rand.New(rand.NewPCG(cfg.Seed, 0xc4a05))}
	for _, t := range cfg.Topics {
		for p := range int32(cfg.Partitions) {
			w.tps = append(w.tps, history.TP{Topic: t, Partition: p})
		}
	}
	return w, nil
}

// Partitions are the partitions the workload writes to.
func (w *Workload) Partitions() []history.TP { return w.tps }

func (w *Workload) client(name string, opts ...kgo.Opt) (*kgo.Client, error) {
	return kgo.NewClient(append(clientOpts(w.cfg.Seeds, name), opts...)...)
}

// clientOpts are the options every client of the workload starts from.
func clientOpts(seeds func() []string, name string) []kgo.Opt {
	base := []kgo.Opt{
		kgo.SeedBrokers(seeds()...),
		kgo.ClientID("chaos-" + name),
		// Leaders move during faults: look them up again soon after a NOT_LEADER answer.
		kgo.MetadataMinAge(250 * time.Millisecond),
		kgo.MetadataMaxAge(10 * time.Second),
	}
	return append(base, Security.opts()...)
}

// CreateTopics creates the workload's topics.
func (w *Workload) CreateTopics(ctx context.Context) error {
	cl, err := w.client("admin")
	if err != nil {
		return err
	}
	defer cl.Close()
	resp, err := kadm.NewClient(cl).CreateTopics(ctx, int32(w.cfg.Partitions), 1, nil, w.cfg.Topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("workload: create topics %v: %w", w.cfg.Topics, err)
	}
	return nil
}

// Start starts the producers, the assigned consumer, the group members and their churn.
func (w *Workload) Start() error {
	interval := time.Duration(float64(time.Second) * float64(w.cfg.Producers) / float64(w.cfg.Rate))
	for i := range w.cfg.Producers {
		var timeout time.Duration
		if i == w.cfg.Producers-1 {
			timeout = w.cfg.RecordTimeout
		}
		// Producers start at evenly spaced partitions, so that each partition hears from one of them
		// every interval/producers.
		p, err := w.startProducer(fmt.Sprintf("producer-%d", i+1), interval, timeout, i*len(w.tps)/w.cfg.Producers)
		if err != nil {
			return err
		}
		w.producers = append(w.producers, p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancelConsumers = cancel
	a, err := w.startAssign(ctx, "assign-1")
	if err != nil {
		return err
	}
	w.assign = a
	for _, g := range Groups {
		for i := range w.cfg.GroupMembers {
			m := &groupMember{w: w, group: g, slot: i + 1, manual: g == Groups[0]}
			if err := m.start(ctx); err != nil {
				return err
			}
			w.groups = append(w.groups, m)
		}
	}
	if w.cfg.Churn > 0 {
		cctx, ccancel := context.WithCancel(ctx)
		w.cancelChurn = ccancel
		w.wg.Go(func() { w.churn(cctx) })
	}
	return nil
}

// churn replaces a group member (drawn from the seed) every Churn: the old one leaves the group, a new
// one joins, and the group rebalances.
func (w *Workload) churn(ctx context.Context) {
	t := time.NewTicker(w.cfg.Churn)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m := w.groups[w.rng.IntN(len(w.groups))]
		m.stop()
		if err := m.start(ctx); err != nil && ctx.Err() == nil {
			w.cfg.Logf("workload: %s: %v", m.name(), err)
		}
	}
}

// WaitProgress waits until every partition has had a send acknowledged after since.
func (w *Workload) WaitProgress(ctx context.Context, since time.Time) error {
	return w.acks.waitAll(ctx, w.tps, since)
}

// Stop stops the traffic: the producers stop sending and wait (a while) for what they hold to be
// acknowledged; then the consumers stop. Sends that never ended are recorded as indeterminate.
func (w *Workload) Stop() error {
	errs := make([]error, len(w.producers))
	var wg sync.WaitGroup
	for i, p := range w.producers {
		wg.Go(func() { errs[i] = p.stop() })
	}
	wg.Wait()
	if w.cancelChurn != nil {
		w.cancelChurn()
	}
	w.wg.Wait()
	if w.cancelConsumers != nil {
		w.cancelConsumers()
	}
	if w.assign != nil {
		w.assign.wait()
	}
	for _, m := range w.groups {
		m.stop()
	}
	return errors.Join(errs...)
}

// Stats are what the workload counted besides the history.
type Stats struct {
	ProduceErrors map[string]int // by error
	FetchErrors   int
}

// Stats returns the counts so far.
func (w *Workload) Stats() Stats {
	st := Stats{ProduceErrors: map[string]int{}}
	for _, p := range w.producers {
		p.mu.Lock()
		for k, v := range p.errs {
			st.ProduceErrors[k] += v
		}
		p.mu.Unlock()
	}
	if w.assign != nil {
		st.FetchErrors += int(w.assign.fetchErrors.Load())
	}
	for _, m := range w.groups {
		st.FetchErrors += int(m.fetchErrors.Load())
	}
	return st
}
