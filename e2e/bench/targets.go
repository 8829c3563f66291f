package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/streamhouse/streamhouse/agent"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/e2e/localpki"
	"github.com/streamhouse/streamhouse/segstore"
)

// Components, the pprof label every goroutine of the process carries, so that a CPU profile tells the
// broker's work from the clients', etcd's and the S3 endpoint's. Goroutines inherit their creator's
// labels: each part is started under its label and everything it spawns keeps it.
const (
	compBroker = "broker" // a StreamHouse agent (with its etcd and S3 clients) or kfake
	compEtcd   = "etcd"   // the embedded etcd server
	compS3     = "s3"     // the embedded S3 endpoint (gofakes3 on a directory)
	compClient = "client" // the bench's franz-go producers and consumers
)

// withLabels runs fn with the component and target labels set on this goroutine.
func withLabels(ctx context.Context, component, target string, fn func(context.Context)) {
	pprof.Do(ctx, pprof.Labels("component", component, "target", target), fn)
}

// target is one system under test.
type target interface {
	Name() string
	Brokers() []string
	// Agents are the in-process StreamHouse agents (none for kfake).
	Agents() []*benchAgent
	Close()
}

// kfakeTarget is franz-go's in-memory broker.
type kfakeTarget struct{ c *kfake.Cluster }

func startKfake(ctx context.Context) (*kfakeTarget, error) {
	var c *kfake.Cluster
	var err error
	withLabels(ctx, compBroker, "kfake", func(context.Context) {
		c, err = kfake.NewCluster(kfake.NumBrokers(1))
	})
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	return &kfakeTarget{c: c}, nil
}

func (k *kfakeTarget) Name() string          { return "kfake" }
func (k *kfakeTarget) Brokers() []string     { return k.c.ListenAddrs() }
func (k *kfakeTarget) Agents() []*benchAgent { return nil }
func (k *kfakeTarget) Close()                { k.c.Close() }

// shConfig is one StreamHouse cluster of the suite.
type shConfig struct {
	name          string
	agents        int
	flushInterval time.Duration // 0: the agent's default
	profile       string        // S3 latency profile (segstore.Profile)
	// memory puts the objects in memory (segstore.Memory) instead of the embedded S3 endpoint: with a
	// latency profile, S3 as the agent sees it, without the endpoint's CPU (it hashes every object
	// twice and writes it to disk) competing with the agent on this machine.
	memory bool
	// linger is the producers' linger in this cluster's latency runs (0: --linger).
	linger time.Duration
	// consume also reads a data set back from this cluster, cold and warm (with a latency profile:
	// at S3's GET latency).
	consume bool
	// maintenance is the agents' --maintenance-interval (0: the default).
	maintenance time.Duration
	// secure serves a SASL_SSL listener (TLS, SCRAM-SHA-512, ACLs on) instead of PLAINTEXT (secure.go).
	secure bool
	// transactions runs the agents with transactions on (the transactions phase; the streamhouse command's default).
	transactions bool
}

// shCluster is StreamHouse's dev mode built as cmd/streamhouse's dev builds it: embedded etcd, the
// embedded S3 endpoint on a directory, agents going to both through the same clients as in production
// (etcd over gRPC, S3 over HTTP through the AWS SDK).
type shCluster struct {
	cfg    shConfig
	dir    string
	etcd   *coord.Embedded
	s3     *segstore.S3Server
	store  segstore.Store // the bench's own handle on the bucket, to clear it between runs
	agents []*benchAgent
	pki    *localpki.Files // secure: the CA and the agents' certificate
}

// benchAgent is one in-process agent and the registry its metrics (agent, coord, segstore) go to.
type benchAgent struct {
	a      *agent.Agent
	client *coord.Client
	reg    *prometheus.Registry
	cfg    agent.Config
	puts   *latencies // every PUT's duration, exactly (the histogram's buckets are a factor of 2 apart)
}

// memoryStoreBytes bounds what a memory cluster keeps: enough for the consume phase's data set, far
// less than a throughput run writes at a gigabyte per second (which would fill the machine's memory).
const memoryStoreBytes = 768 << 20

// boundedMemory is an in-memory store that forgets its oldest objects past max bytes. Only the
// throughput runs write that much, and they read nothing back.
type boundedMemory struct {
	*segstore.Memory
	max int64

	mu    sync.Mutex
	order []sizedKey
	total int64
}

type sizedKey struct {
	key  string
	size int64
}

func (b *boundedMemory) Put(ctx context.Context, key string, data ...[]byte) error {
	if err := b.Memory.Put(ctx, key, data...); err != nil {
		return err
	}
	var size int64
	for _, p := range data {
		size += int64(len(p))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.order = append(b.order, sizedKey{key, size})
	b.total += size
	for b.total > b.max && len(b.order) > 1 {
		_ = b.Memory.Delete(ctx, b.order[0].key)
		b.total -= b.order[0].size
		b.order = b.order[1:]
	}
	return nil
}

// timedPuts records the duration of every Put, as the agent's S3 histogram sees it.
type timedPuts struct {
	segstore.Store
	d *latencies
}

func (t timedPuts) Put(ctx context.Context, key string, data ...[]byte) error {
	start := time.Now()
	err := t.Store.Put(ctx, key, data...)
	t.d.add(time.Since(start))
	return err
}

const (
	benchBucket     = "streamhouse"
	benchCredential = "streamhouse"
)

func startSH(ctx context.Context, cfg shConfig, log hclog.Logger) (_ *shCluster, err error) {
	dir, err := os.MkdirTemp("", "streamhouse-bench-")
	if err != nil {
		return nil, err
	}
	c := &shCluster{cfg: cfg, dir: dir}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	withLabels(ctx, compEtcd, cfg.name, func(ctx context.Context) {
		c.etcd, err = coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: filepath.Join(dir, "etcd"), Name: "bench",
			ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", Logger: log})
	})
	if err != nil {
		return nil, err
	}
	if cfg.memory {
		c.store = &boundedMemory{Memory: segstore.NewMemory(), max: memoryStoreBytes}
	} else {
		withLabels(ctx, compS3, cfg.name, func(context.Context) { err = c.startS3(log) })
		if err != nil {
			return nil, err
		}
		if c.store, err = segstore.NewS3(ctx, c.s3Config()); err != nil {
			return nil, err
		}
	}
	if cfg.secure {
		if err = c.secureSetup(ctx); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= cfg.agents; i++ {
		withLabels(ctx, compBroker, cfg.name, func(ctx context.Context) { err = c.startAgent(ctx, i, log) })
		if err != nil {
			return nil, fmt.Errorf("%s agent %d: %w", cfg.name, i, err)
		}
	}
	return c, nil
}

func (c *shCluster) startS3(log hclog.Logger) error {
	srv, err := segstore.NewS3Server(segstore.S3ServerConfig{Dir: filepath.Join(c.dir, "s3"), Bucket: benchBucket, Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	if err := srv.Start(ln); err != nil {
		ln.Close()
		return err
	}
	c.s3 = srv
	return nil
}

func (c *shCluster) s3Config() segstore.S3Config {
	return segstore.S3Config{Endpoint: c.s3.Endpoint(), Bucket: benchBucket, Region: segstore.DefaultS3Region,
		PathStyle: true, AccessKeyID: benchCredential, SecretAccessKey: benchCredential}
}

// startAgent starts agent i (1-based) with dev mode's defaults. Its S3 store is wrapped in the
// cluster's latency profile under its metrics, as dev --s3-profile does.
func (c *shCluster) startAgent(ctx context.Context, i int, log hclog.Logger) error {
	profile, err := segstore.Profile(c.cfg.profile)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	cfg := agent.NewConfig()
	cfg.ID = c.cfg.name + "-" + strconv.Itoa(i)
	cfg.KafkaAddr, cfg.HTTPAddr, cfg.InternalAddr = "127.0.0.1:0", "", "127.0.0.1:0"
	if c.cfg.flushInterval > 0 {
		cfg.FlushInterval = c.cfg.flushInterval
	}
	if c.cfg.maintenance > 0 {
		cfg.MaintenanceInterval = c.cfg.maintenance
	}
	cfg.Logger, cfg.Registerer, cfg.Gatherer = log.Named(cfg.ID), reg, reg
	cfg.Transactions = c.cfg.transactions
	if c.cfg.secure {
		if err := c.secureAgent(&cfg); err != nil {
			return err
		}
	}
	client, err := coord.Connect(ctx, coord.Config{Endpoints: c.etcd.Endpoints(), Logger: cfg.Logger, Registerer: reg,
		MaxTxnOps: coord.DefaultEmbedMaxTxnOps, MaxRequestBytes: coord.DefaultEmbedMaxRequestBytes})
	if err != nil {
		return err
	}
	var bucket segstore.Store = c.store // memory: the cluster's one store
	if !c.cfg.memory {
		if bucket, err = segstore.NewS3(ctx, c.s3Config()); err != nil {
			client.Close()
			return err
		}
	}
	puts := &latencies{}
	store := segstore.NewMetrics(reg).Wrap(timedPuts{segstore.WithProfile(bucket, profile, uint64(i)), puts})
	a, err := agent.New(cfg, client, store)
	if err == nil {
		if err = a.Start(ctx); err != nil {
			a.Close()
		}
	}
	if err != nil {
		client.Close()
		return err
	}
	c.agents = append(c.agents, &benchAgent{a: a, client: client, reg: reg, cfg: cfg, puts: puts})
	return nil
}

// restartAgents replaces every agent by a fresh one with the same id (graceful stop, then start): a
// fresh agent's read cache is empty, so what it serves next comes from S3.
func (c *shCluster) restartAgents(ctx context.Context, log hclog.Logger) error {
	old := c.agents
	c.agents = nil
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, a := range old {
		_ = a.a.Shutdown(sctx)
		_ = a.client.Close()
	}
	for i := range old {
		var err error
		withLabels(ctx, compBroker, c.cfg.name, func(ctx context.Context) { err = c.startAgent(ctx, i+1, log) })
		if err != nil {
			return fmt.Errorf("%s: restart agent %d: %w", c.cfg.name, i+1, err)
		}
	}
	return nil
}

func (c *shCluster) Name() string          { return c.cfg.name }
func (c *shCluster) Agents() []*benchAgent { return c.agents }

func (c *shCluster) Brokers() []string {
	var out []string
	for _, a := range c.agents {
		out = append(out, a.a.KafkaAddr())
	}
	return out
}

// EtcdEndpoints are the embedded etcd's client addresses.
func (c *shCluster) EtcdEndpoints() []string { return c.etcd.Endpoints() }

// clearBucket deletes every object: the runs' topics are deleted after each run, and their objects
// would otherwise fill the disk over a full suite (nothing collects garbage objects yet).
func (c *shCluster) clearBucket(ctx context.Context) error {
	keys, err := c.store.List(ctx, "")
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := c.store.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the agents gracefully, then their clients, the S3 endpoint and etcd, and removes the
// data directory.
func (c *shCluster) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for _, a := range c.agents {
		_ = a.a.Shutdown(ctx)
	}
	for _, a := range c.agents {
		_ = a.client.Close()
	}
	if c.s3 != nil {
		_ = c.s3.Close()
	}
	if c.etcd != nil {
		c.etcd.Close()
	}
	_ = os.RemoveAll(c.dir)
}

var errNoLeaders = errors.New("partitions without a leader")
