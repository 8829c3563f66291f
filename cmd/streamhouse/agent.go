package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/agent"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// s3CheckTimeout bounds the start-up check that the bucket answers.
const s3CheckTimeout = 10 * time.Second

// agentFlags are the flags of "streamhouse agent".
type agentFlags struct {
	cfg        agent.Config
	etcd       string
	etcdPrefix string
	// etcdMaxTxnOps is coord.Config.MaxTxnOps: the operations the agent packs into one etcd Txn.
	etcdMaxTxnOps int
	// etcdMaxRequestBytes is coord.Config.MaxRequestBytes: the etcd servers' --max-request-bytes,
	// 2/3 of which the agent packs into one etcd Txn.
	etcdMaxRequestBytes int64
	s3                  segstore.S3Config
	log                 *logFlags
}

func (c *cli) agentFlagSet() (*flagSet, *agentFlags) {
	f := &agentFlags{cfg: agent.NewConfig(), etcdPrefix: coord.DefaultPrefix, etcdMaxTxnOps: coord.DefaultMaxTxnOps,
		etcdMaxRequestBytes: coord.DefaultMaxRequestBytes, s3: segstore.S3Config{Region: "us-east-1"}}
	f.cfg.ID, _ = os.Hostname()
	fs := c.newFlagSet("agent", "", "Run a StreamHouse agent: a Kafka endpoint that keeps record data in an S3 bucket and\n"+
		"coordinates with other agents through etcd. S3 credentials come from the standard AWS chain\n"+
		"(AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, an instance role, ...).\n"+
		"SIGINT or SIGTERM hands the agent's partitions over and exits; a second signal exits at once.")
	fs.fromEnv()
	fs.StringVar(&f.etcd, "etcd", "", "etcd `endpoints`, comma-separated (required)")
	fs.StringVar(&f.etcdPrefix, "etcd-prefix", f.etcdPrefix, "`prefix` of StreamHouse's etcd keys")
	fs.Var(atLeastValue{&f.etcdMaxTxnOps, coord.MinMaxTxnOps}, "etcd-max-txn-ops", "most `operations` in one etcd Txn; "+
		"must not exceed the etcd servers' --max-txn-ops (a flush's index commit takes 2 per partition)")
	fs.Var(sizeRangeValue{&f.etcdMaxRequestBytes, coord.MinMaxRequestBytes, coord.MaxMaxRequestBytes}, "etcd-max-request-bytes",
		"largest etcd request `size`; must not exceed the etcd servers' --max-request-bytes (Txns are packed to 2/3 of it; "+
			"a flush's index commit takes about 1KiB per partition of an idempotent producer)")
	fs.StringVar(&f.s3.Endpoint, "s3-endpoint", "", "S3 endpoint `URL` (default: AWS S3 for the region)")
	fs.StringVar(&f.s3.Bucket, "s3-bucket", "", "S3 `bucket` (required)")
	fs.StringVar(&f.s3.Region, "s3-region", f.s3.Region, "S3 `region`")
	fs.BoolVar(&f.s3.PathStyle, "s3-path-style", false, "address the bucket in the path, not the host name (MinIO and most non-AWS stores)")
	fs.StringVar(&f.cfg.ID, "id", f.cfg.ID, "agent `id`, unique in the cluster (default: the host name)")
	fs.StringVar(&f.cfg.AZ, "az", "", "availability `zone`, reported to clients as the broker rack")
	fs.StringVar(&f.cfg.Group, "group", f.cfg.Group, "agent `group`")
	fs.StringVar(&f.cfg.KafkaAddr, "kafka-addr", f.cfg.KafkaAddr, "Kafka listen `address`")
	fs.StringVar(&f.cfg.AdvertisedAddr, "advertised-addr", "", "`address` given to clients (default: the Kafka listen address)")
	fs.StringVar(&f.cfg.HTTPAddr, "http-addr", f.cfg.HTTPAddr, "`address` of /healthz, /readyz and /metrics (empty: no HTTP)")
	fs.StringVar(&f.cfg.InternalAddr, "internal-addr", f.cfg.InternalAddr, "listen `address` for other agents (forwarded sequencing, "+
		"authenticated by the cluster secret in etcd); empty: none, and no agent forwards to this one")
	f.flushFlags(fs)
	fs.Var(sizeValue{&f.cfg.CacheBytes}, "cache-bytes", "read cache `size`")
	fs.Var(sizeValue{&f.cfg.MaxBufferedBytes}, "max-buffered-bytes", "produce waits once this `size` is buffered")
	fs.Var(sizeValue{&f.cfg.MaxDecompressedBatchBytes}, "max-decompressed-batch-bytes",
		"most a compressed produce batch may decompress to while it is validated (a `size`; past it: MESSAGE_TOO_LARGE)")
	fs.DurationVar(&f.cfg.LeaseTTL, "lease-ttl", f.cfg.LeaseTTL, "etcd lease `TTL`: how long a dead agent keeps its partitions")
	fs.DurationVar(&f.cfg.OffsetsRetention, "offsets-retention", f.cfg.OffsetsRetention,
		"how long a consumer group's committed offsets outlive its last member, or a standalone commit (a Go `duration`; 0: forever)")
	f.topicFlags(fs)
	f.log = fs.logFlags()
	fs.require("etcd", "s3-bucket")
	return fs, f
}

// flushFlags and topicFlags are shared with dev.
func (f *agentFlags) flushFlags(fs *flagSet) {
	fs.DurationVar(&f.cfg.FlushInterval, "flush-interval", f.cfg.FlushInterval, "longest a produce waits for its flush (a Go `duration`)")
	fs.Var(sizeValue{&f.cfg.FlushBytes}, "flush-bytes", "a flush starts once this `size` is buffered")
}

func (f *agentFlags) topicFlags(fs *flagSet) {
	fs.BoolVar(&f.cfg.AutoCreateTopics, "auto-create-topics", false, "create unknown topics on first use")
	fs.Var(int32Value{&f.cfg.DefaultPartitions}, "default-partitions", "`partitions` of auto-created topics and of CreateTopics without a count")
}

func (c *cli) agent(args []string) error {
	fs, f := c.agentFlagSet()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	log := f.log.logger(c.stderr)
	reg := newRegistry()
	f.cfg.Logger, f.cfg.Registerer, f.cfg.Gatherer, f.cfg.Version = log, reg, reg, buildVersion()
	if err := f.cfg.Validate(); err != nil {
		return usageError{err}
	}
	if err := f.s3.Validate(); err != nil {
		return usageError{err}
	}

	ctx, started := c.startup()
	a, etcd, err := startAgent(ctx, f.cfg, coord.Config{
		Endpoints: splitList(f.etcd), Prefix: f.etcdPrefix, MaxTxnOps: f.etcdMaxTxnOps, MaxRequestBytes: f.etcdMaxRequestBytes,
		Logger: log, Registerer: reg,
	}, f.s3, reg, nil)
	if interrupted := started(); interrupted {
		if err == nil {
			_ = a.Close()
			_ = etcd.Close()
		}
		return errInterrupted
	}
	if err != nil {
		return err
	}
	defer etcd.Close()
	return serve(c, log, []*agent.Agent{a})
}

// startAgent connects to etcd, opens and checks the bucket, and starts an agent; on error it leaves
// nothing open. wrap, when not nil, wraps the bucket's store inside the metrics (dev mode's simulated
// S3 latency, which the metrics then see).
func startAgent(ctx context.Context, cfg agent.Config, cc coord.Config, s3 segstore.S3Config, reg prometheus.Registerer,
	wrap func(segstore.Store) segstore.Store) (*agent.Agent, *coord.Client, error) {
	etcd, err := coord.Connect(ctx, cc)
	if err != nil {
		return nil, nil, err
	}
	store, err := openS3(ctx, s3, cfg.Logger)
	if err != nil {
		_ = etcd.Close()
		return nil, nil, err
	}
	var st segstore.Store = store
	if wrap != nil {
		st = wrap(st)
	}
	// S3 requests carry the agent's zone, so that a bill's per-zone request counts can be read off.
	var s3reg prometheus.Registerer = reg
	if cfg.AZ != "" {
		s3reg = prometheus.WrapRegistererWith(prometheus.Labels{"agent_zone": cfg.AZ}, reg)
	}
	a, err := agent.New(cfg, etcd, segstore.NewMetrics(s3reg).Wrap(st))
	if err == nil {
		if err = a.Start(ctx); err != nil {
			_ = a.Close()
			err = fmt.Errorf("agent %s: %w", cfg.ID, err)
		}
	}
	if err != nil {
		_ = etcd.Close()
		return nil, nil, err
	}
	return a, etcd, nil
}

// openS3 opens the bucket and checks that it answers, so that a wrong endpoint, a missing bucket or bad
// credentials fail start-up with one clear line (segstore's errors name the endpoint and bucket).
func openS3(ctx context.Context, cfg segstore.S3Config, log hclog.Logger) (*segstore.S3, error) {
	store, err := segstore.NewS3(ctx, cfg)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, s3CheckTimeout)
	defer cancel()
	if err := store.Check(cctx); err != nil {
		return nil, err
	}
	log.Debug("object store ready", "bucket", cfg.Bucket, "endpoint", cfg.Endpoint)
	return store, nil
}
