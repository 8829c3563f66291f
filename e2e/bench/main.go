// Command bench measures Kafka-compatible endpoints. It has two modes.
//
// The suite (--suite full or --suite short; "make bench", "make bench-short") runs, in this one process,
// the same workloads against StreamHouse in dev mode (embedded etcd, the embedded S3 endpoint and 1
// agent, and the same with 3 agents) and against franz-go's in-memory kfake broker, prints one table
// with the StreamHouse/kfake ratio of each figure and writes every figure to --json. docs/BENCHMARKS.md
// says what each figure is and what limits it.
//
//	go run ./e2e/bench --suite short --bin bin/streamhouse --json bench.json
//
// Without --suite it measures one running endpoint, the way the single-node issue's figures are
// defined: produce throughput and latency with one franz-go producer, then consume throughput reading
// it all back, and (for a StreamHouse agent) S3 PUTs/s and etcd Txns/s from the agent's /metrics.
//
//	go run ./e2e/bench --brokers 127.0.0.1:9092 --metrics http://127.0.0.1:8080/metrics
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	// Single-endpoint mode.
	brokers := flag.String("brokers", "127.0.0.1:9092", "seed brokers (single-endpoint mode)")
	metrics := flag.String("metrics", "", "agent /metrics URL (optional) for S3 and etcd request rates (single-endpoint mode)")
	topic := flag.String("topic", fmt.Sprintf("bench-%d", time.Now().UnixNano()), "topic to create (single-endpoint mode)")
	partitions := flag.Int("partitions", 8, "partitions (single-endpoint mode)")
	size := flag.Int("record-size", 1024, "record value bytes (single-endpoint mode)")
	duration := flag.Duration("duration", 20*time.Second, "produce duration (single-endpoint mode)")
	codec := flag.String("compression", "none", "producer compression: none, snappy, lz4, zstd, gzip (single-endpoint mode)")
	rate := flag.Int("rate", 0, "records/s to send at a fixed schedule (open loop); 0 sends as fast as the client takes them (single-endpoint mode)")
	// Suite mode.
	var o suiteOptions
	flag.StringVar(&o.suite, "suite", "", "run the side-by-side suite: full or short (CI); empty: single-endpoint mode")
	flag.StringVar(&o.jsonPath, "json", "", "suite: write the results to this JSON file")
	flag.StringVar(&o.bin, "bin", "", "suite: the streamhouse binary for the figures measured on agent processes (empty: build one)")
	flag.DurationVar(&o.window, "window", 0, "suite: measuring window of each run (default 5s full, 3s short)")
	flag.StringVar(&o.profileDir, "profile-dir", "", "suite: also keep each throughput run's CPU profile (pprof, samples labelled by component and target) in this `directory`")
	flag.StringVar(&o.only, "only", "", "suite: run only the produce workloads matching this `regexp` (e.g. '8 prod'), for profiling")
	flag.StringVar(&o.targets, "targets", "", "suite: the `targets` to run, comma-separated, of sh-1, sh-3, sh-1-mem (one agent, objects in memory),\nsh-1-sec (one agent over SASL_SSL: TLS, SCRAM-SHA-512, ACLs on) and kfake (the ratios need kfake; default: all for --suite full,\nall but sh-1-mem and sh-1-sec for --suite short)")
	flag.Float64Var(&o.latencyCap, "latency-rate-cap", defaultLatencyCap, "suite: the open-loop latency runs send at min(50% of the target's max, this many records/s)")
	flag.IntVar(&o.repeat, "repeat", 0, "suite: run each produce workload this many times per target, the targets alternating, and report each target's median run (by MiB/s); every run's figure goes into the notes\n(default: --suite full runs the workloads with a target 3 times, the others once; --suite short runs each once)")
	flag.DurationVar(&o.linger, "linger", 0, "suite: the producers' linger (franz-go ProducerLinger), the same against every target")
	flag.StringVar(&o.phases, "phases", "produce,latency,consume,history,txn,procs", "suite: the `phases` to run, comma-separated\n(txn: transactional producers on fresh sh-1 (and sh-3 in full) with transactions on, and kfake)")
	flag.Parse()
	var err error
	if o.suite != "" {
		err = runSuite(o)
	} else {
		err = runSingle(*brokers, *metrics, *topic, int32(*partitions), *size, *duration, *codec, *rate)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
