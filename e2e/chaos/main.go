package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/fault"
)

// Modes.
const (
	modeCI   = "ci"   // --rounds rounds of every fault, a few minutes
	modeLong = "long" // rounds, then random faults, until --duration
)

type config struct {
	bin, etcdBin  string
	seed          uint64
	mode          string
	duration      time.Duration
	rounds        int
	out           string
	keep          bool
	agents        int
	topics        int
	partitions    int
	producers     int
	rate          int
	ttl           time.Duration
	herdConns     int
	hostileConns  int
	recordTimeout time.Duration
	churn         time.Duration
	only          []string
	quiet         time.Duration
	security      bool
	txnProducers  int
	txnParts      int
}

func main() {
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(2)
	}
	ok, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chaos:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

func parseFlags(args []string) (config, error) {
	var cfg config
	var only string
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.BoolVar(&cfg.security, "security", false, "run the agents with SASL_SSL listeners (TLS, SCRAM-SHA-512), ACLs on and "+
		"the internal listener over mTLS; every client logs in as a super user (docs/DEPLOY.md)")
	fs.StringVar(&cfg.bin, "bin", "bin/streamhouse", "the streamhouse `binary`")
	fs.StringVar(&cfg.etcdBin, "etcd-bin", "bin/etcdmember", "the etcdmember `binary` (e2e/chaos/cmd/etcdmember)")
	fs.Uint64Var(&cfg.seed, "seed", 0, "`seed` of the fault schedule (0: a new one, printed)")
	fs.StringVar(&cfg.mode, "mode", modeCI, "ci (every fault once) or long (until --duration)")
	fs.DurationVar(&cfg.duration, "duration", 30*time.Minute, "length of a long run")
	fs.IntVar(&cfg.rounds, "rounds", 2, "rounds of CI mode: each injects every fault once, in a new order, on new targets")
	fs.StringVar(&cfg.out, "out", "", "`directory` of the history, anomalies, summary and logs (default: a new temporary one)")
	fs.BoolVar(&cfg.keep, "keep", false, "keep etcd's and S3's data in --out after the run")
	fs.IntVar(&cfg.agents, "agents", 3, "agents")
	fs.IntVar(&cfg.topics, "topics", 3, "topics")
	fs.IntVar(&cfg.partitions, "partitions", 8, "partitions per topic")
	fs.IntVar(&cfg.producers, "producers", 3, "producers")
	fs.IntVar(&cfg.rate, "rate", 150, "records/s over every producer")
	fs.DurationVar(&cfg.ttl, "lease-ttl", 3*time.Second, "agents' --lease-ttl")
	fs.IntVar(&cfg.herdConns, "herd-conns", 200, "client connections of the thundering herd")
	fs.IntVar(&cfg.hostileConns, "hostile-conns", agentMaxConnsPerIP+8,
		"idle connections the hostile clients hold to each agent (the agents take "+strconv.Itoa(agentMaxConnsPerIP)+" from one address)")
	fs.DurationVar(&cfg.recordTimeout, "record-timeout", 5*time.Second, "delivery deadline of the last producer's records (0: none)")
	fs.DurationVar(&cfg.churn, "churn", 15*time.Second, "a group member leaves and another joins this often (0: never)")
	fs.StringVar(&only, "faults", "", "comma-separated `names` of the faults to inject (default: all of "+strings.Join(fault.Names, ", ")+")")
	fs.IntVar(&cfg.txnProducers, "txn-producers", 3, "transactional producers (0: no transactional workload, and the agents run with --transactions=false)")
	fs.IntVar(&cfg.txnParts, "txn-partitions", 4, "partitions of each of the transactional workload's two topics")
	fs.DurationVar(&cfg.quiet, "quiet", time.Second, "pause between one fault's recovery and the next fault")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.mode != modeCI && cfg.mode != modeLong {
		return cfg, fmt.Errorf("--mode %q: want ci or long", cfg.mode)
	}
	if cfg.rounds < 1 {
		return cfg, fmt.Errorf("--rounds %d: want at least 1", cfg.rounds)
	}
	if cfg.txnProducers < 0 || cfg.txnProducers > 0 && cfg.txnParts < 1 {
		return cfg, fmt.Errorf("--txn-producers %d, --txn-partitions %d: want at least 0 producers and 1 partition", cfg.txnProducers, cfg.txnParts)
	}
	if cfg.agents < 2 || cfg.topics < 1 || cfg.partitions < 1 || cfg.producers < 1 || cfg.rate < cfg.producers {
		return cfg, fmt.Errorf("need at least 2 agents, 1 topic, 1 partition, 1 producer and a rate of 1 record/s per producer")
	}
	if cfg.churn == 0 {
		cfg.churn = -1 // workload: never
	}
	if only != "" {
		for _, n := range strings.Split(only, ",") {
			cfg.only = append(cfg.only, strings.TrimSpace(n))
		}
	}
	if cfg.seed == 0 {
		cfg.seed = uint64(time.Now().UnixNano()%1_000_000_000) + 1
	}
	return cfg, nil
}
