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
	// etcdAuth is TLS and credentials for etcd.
	etcdAuth *etcdAuth
	// listeners are the Kafka listeners and their security (listenerflags.go).
	listeners *listenerFlags
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
	fs.StringVar(&f.etcd, "etcd", defaultEtcd, "etcd `endpoints`, comma-separated")
	fs.StringVar(&f.etcdPrefix, "etcd-prefix", f.etcdPrefix, "`prefix` of StreamHouse's etcd keys")
	fs.Var(atLeastValue{&f.etcdMaxTxnOps, coord.MinMaxTxnOps}, "etcd-max-txn-ops", "most `operations` in one etcd Txn; "+
		"must not exceed the etcd servers' --max-txn-ops (a flush's commit compares one leader key per partition)")
	fs.Var(sizeRangeValue{&f.etcdMaxRequestBytes, coord.MinMaxRequestBytes, coord.MaxMaxRequestBytes}, "etcd-max-request-bytes",
		"largest etcd request `size`; must not exceed the etcd servers' --max-request-bytes (Txns are packed to 2/3 of it; "+
			"a flush's commit takes about 200 bytes per partition)")
	f.etcdAuth = fs.etcdAuthFlags()
	fs.StringVar(&f.s3.Endpoint, "s3-endpoint", "", "S3 endpoint `URL` (default: AWS S3 for the region)")
	fs.StringVar(&f.s3.Bucket, "s3-bucket", "", "S3 `bucket` (required)")
	fs.StringVar(&f.s3.Region, "s3-region", f.s3.Region, "S3 `region`")
	fs.BoolVar(&f.s3.PathStyle, "s3-path-style", false, "address the bucket in the path, not the host name (MinIO and most non-AWS stores)")
	fs.StringVar(&f.s3.CACertFile, "s3-cacert", "", "PEM `file` of the CA certificates to trust for an https:// --s3-endpoint "+
		"(default: the system's roots, or $AWS_CA_BUNDLE)")
	fs.StringVar(&f.cfg.ID, "id", f.cfg.ID, "agent `id`, unique in the cluster (default: the host name)")
	fs.StringVar(&f.cfg.AZ, "az", "", "availability `zone`, reported to clients as the broker rack")
	fs.StringVar(&f.cfg.Group, "group", f.cfg.Group, "agent `group`")
	fs.StringVar(&f.cfg.KafkaAddr, "kafka-addr", f.cfg.KafkaAddr, "Kafka listen `address`")
	fs.StringVar(&f.cfg.AdvertisedAddr, "advertised-addr", "", "`address` given to clients (default: the Kafka listen address)")
	fs.StringVar(&f.cfg.HTTPAddr, "http-addr", f.cfg.HTTPAddr, "`address` of the console, /healthz, /readyz and /metrics (empty: no HTTP)")
	fs.StringVar(&f.cfg.MetricsAddr, "metrics-addr", "", "`address` to serve /metrics on instead of --http-addr: plain HTTP, no authentication, for an interface only Prometheus reaches")
	fs.StringVar(&f.cfg.InternalAddr, "internal-addr", f.cfg.InternalAddr, "listen `address` for other agents (forwarded sequencing, "+
		"authenticated by the cluster secret in etcd); empty: none, and no agent forwards to this one")
	f.flushFlags(fs)
	f.tuningFlags(fs)
	f.topicFlags(fs, false)
	f.lifecycleFlags(fs)
	f.limitFlags(fs)
	f.listeners = f.listenerFlags(fs)
	f.log = fs.logFlags()
	fs.configFile()
	fs.require("s3-bucket")
	return fs, f
}

// flushFlags are shared with dev.
func (f *agentFlags) flushFlags(fs *flagSet) {
	fs.DurationVar(&f.cfg.FlushInterval, "flush-interval", f.cfg.FlushInterval, "longest a produce waits for its flush (a Go `duration`)")
	fs.Var(sizeValue{&f.cfg.FlushBytes}, "flush-bytes", "a flush starts once this `size` is buffered")
}

// lifecycleFlags are retention, producer expiry, maintenance and GC (docs/OPERATING.md, "Retention and
// garbage collection"); shared with dev.
func (f *agentFlags) lifecycleFlags(fs *flagSet) {
	fs.Var(millisValue{&f.cfg.DefaultRetention}, "default-retention-ms",
		"retention.ms of topics that do not set it: how long records are kept, in `milliseconds` (-1: forever)")
	fs.Var(retentionBytesValue{&f.cfg.DefaultRetentionBytes}, "default-retention-bytes",
		"retention.bytes of topics that do not set it: a partition keeps at least this `size` (-1: no limit)")
	fs.Int64Var(&f.cfg.CleanerMemory, "cleaner-memory", f.cfg.CleanerMemory,
		"bytes of the key map a compacted partition's clean builds (about 48 bytes a key; larger dirty sections are cleaned in several cleans)")
	fs.DurationVar(&f.cfg.ProducerIDExpiration, "producer-id-expiration", f.cfg.ProducerIDExpiration,
		"an idempotent producer idle this long on a partition is forgotten (Kafka's producer.id.expiration.ms; a Go `duration`)")
	fs.DurationVar(&f.cfg.MaintenanceInterval, "maintenance-interval", f.cfg.MaintenanceInterval,
		"how often an agent merges and expires the partitions it leads (a Go `duration`)")
	fs.DurationVar(&f.cfg.GCInterval, "gc-interval", f.cfg.GCInterval, "how often the cluster's garbage collector runs (a Go `duration`)")
	fs.DurationVar(&f.cfg.GCGrace, "gc-grace", f.cfg.GCGrace,
		"objects younger than this are never deleted; a flush or merge commits its object within half of it (a Go `duration`, at least 1m)")
	fs.DurationVar(&f.cfg.GCReadGrace, "gc-read-grace", f.cfg.GCReadGrace,
		"an unreferenced object is deleted only once GC has found it unreferenced this long (a Go `duration`, at least 30s)")
}

// limitFlags are the limits that keep one client from exhausting an agent (docs/OPERATING.md,
// "Limits"), named as Kafka names them where Kafka has them.
func (f *agentFlags) limitFlags(fs *flagSet) {
	l := &f.cfg.Limits
	fs.Var(atLeastValue{&l.MaxConnections, 0}, "max-connections", "most Kafka client `connections` open at once; "+
		"past it new ones wait (max.connections; 0: three quarters of the open-file limit)")
	fs.Var(atLeastValue{&l.MaxConnectionsPerIP, 0}, "max-connections-per-ip", "most Kafka `connections` from one "+
		"address; more are closed at once (max.connections.per.ip; 0: no cap)")
	fs.DurationVar(&l.ConnectionsMaxIdle, "connections-max-idle", l.ConnectionsMaxIdle,
		"close a connection with nothing in flight for this `duration` (connections.max.idle.ms)")
	fs.DurationVar(&l.FrameTimeout, "frame-timeout", l.FrameTimeout,
		"close a connection whose request frame has not all arrived this `duration` after its first byte")
	fs.Var(size32Value{&f.cfg.MaxRequestBytes}, "max-request-bytes", "largest request frame `size` (socket.request.max.bytes)")
	fs.Var(sizeValue{&l.QueuedMaxRequestBytes}, "queued-max-request-bytes", "`size` of the requests being read or "+
		"handled at once; reading waits past it (queued.max.request.bytes; at least 2.5 times --max-request-bytes)")
	fs.DurationVar(&l.FetchMaxWait, "fetch-max-wait", l.FetchMaxWait, "longest `duration` a fetch waits for data, whatever it asks")
	fs.Var(int32Value{&l.MaxPartitionsPerRequest}, "max-partitions-per-request",
		"most `partitions` one CreateTopics or CreatePartitions may create")
	fs.Var(int32Value{&l.MaxPartitions}, "max-partitions", "most `partitions` in the cluster, internal topics included")
	fs.Var(atLeastValue{&l.MaxProducerIDsPerPartition, 1}, "max-producer-ids-per-partition",
		"idempotent `producers` whose state a partition keeps; past it the least recently written is forgotten")
	fs.Var(atLeastValue{&l.GroupMaxSize, 1}, "group-max-size", "most `members` of a consumer group (group.max.size)")
}

// tuningFlags are the read path, produce buffering, lease and group offset settings; shared with dev.
func (f *agentFlags) tuningFlags(fs *flagSet) {
	fs.Var(sizeValue{&f.cfg.CacheBytes}, "cache-bytes", "read cache `size`")
	fs.DurationVar(&f.cfg.FetchReadTimeout, "fetch-read-timeout", f.cfg.FetchReadTimeout,
		"longest a fetch waits for object store reads past its MaxWait before it answers with what it has read (a Go `duration`)")
	fs.Var(sizeValue{&f.cfg.MaxReadBytesInFlight}, "max-read-bytes-in-flight",
		"object store reads under way at once, in bytes, fetches that answered without them included (a `size`)")
	fs.Var(sizeValue{&f.cfg.MaxBufferedBytes}, "max-buffered-bytes", "produce waits once this `size` is buffered")
	fs.Var(sizeValue{&f.cfg.MaxDecompressedBatchBytes}, "max-decompressed-batch-bytes",
		"most a compressed produce batch may decompress to while it is validated (a `size`; past it: MESSAGE_TOO_LARGE)")
	fs.DurationVar(&f.cfg.LeaseTTL, "lease-ttl", f.cfg.LeaseTTL, "etcd lease `TTL`: how long a dead agent keeps its partitions")
	fs.DurationVar(&f.cfg.OffsetsRetention, "offsets-retention", f.cfg.OffsetsRetention,
		"how long a consumer group's committed offsets outlive its last member, or a standalone commit (a Go `duration`; 0: forever)")
}

// topicFlags are shared with dev, which creates topics on first use by default (as Kafka does), where
// a production agent does not: there a typo in a client's topic would make a topic.
func (f *agentFlags) topicFlags(fs *flagSet, autoCreate bool) {
	f.cfg.AutoCreateTopics = autoCreate
	fs.BoolVar(&f.cfg.AutoCreateTopics, "auto-create-topics", autoCreate, "create unknown topics on first use")
	fs.BoolVar(&f.cfg.Transactions, "transactions", true,
		"serve Kafka transactions: the transaction coordinator, markers, read_committed (=false: the transaction APIs are not advertised)")
	fs.BoolVar(&f.cfg.Transactions, "experimental-transactions", true, "the name --transactions had while it was off by default")
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
	if err := f.listeners.apply(&f.cfg); err != nil {
		return err
	}
	if err := f.cfg.Validate(); err != nil {
		return usageError{err}
	}
	if err := f.s3.Validate(); err != nil {
		return usageError{err}
	}

	cc := coord.Config{
		Endpoints: splitList(f.etcd), Prefix: f.etcdPrefix, MaxTxnOps: f.etcdMaxTxnOps, MaxRequestBytes: f.etcdMaxRequestBytes,
		Logger: log, Registerer: reg,
	}
	if err := f.etcdAuth.apply(&cc, log); err != nil {
		return err
	}
	ctx, started := c.startup()
	a, etcd, err := startAgent(ctx, f.cfg, cc, f.s3, reg, nil)
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
