package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hashicorp/go-hclog"

	"github.com/streamhouse/streamhouse/agent"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

const (
	devBucket     = "streamhouse"
	devCredential = "streamhouse" // the dev S3 endpoint accepts any credentials
	devRegion     = "us-east-1"
	maxDevAgents  = 32
	// defaultDevEtcdAddr is where dev's embedded etcd listens unless --etcd-addr says otherwise.
	defaultDevEtcdAddr = "127.0.0.1:2379"
)

// devFlags are the flags of "streamhouse dev".
type devFlags struct {
	agentFlags
	dataDir  string
	etcdAddr string
	s3Addr   string
	agents   int
	// s3Profile simulates S3's latency in the in-process agents' stores (segstore.Profile).
	s3Profile string
	// etcdQuotaBytes is the embedded etcd's --quota-backend-bytes.
	etcdQuotaBytes int64
	// zones are the agents' zones, comma-separated: agent i takes the i-th, cycling.
	zones string
}

func (c *cli) devFlagSet() (*flagSet, *devFlags) {
	f := &devFlags{agentFlags: agentFlags{cfg: agent.NewConfig(), etcdMaxTxnOps: coord.DefaultEmbedMaxTxnOps,
		etcdMaxRequestBytes: coord.DefaultEmbedMaxRequestBytes}, dataDir: "./.streamhouse", etcdQuotaBytes: coord.DefaultEmbedQuotaBytes,
		etcdAddr: defaultDevEtcdAddr, s3Addr: "127.0.0.1:9000", agents: 1, s3Profile: segstore.ProfileNone}
	fs := c.newFlagSet("dev", "", "Run a single-node StreamHouse for development: embedded etcd, an S3-compatible endpoint on a\n"+
		"local directory (bucket \"streamhouse\", any credentials) and N agents, all in one process. Data\n"+
		"survives a restart with the same --data-dir. Agent i listens on the Kafka and HTTP ports + i-1.\n"+
		"With --agents 0 only etcd and S3 run, for separate 'streamhouse agent' processes to join.")
	fs.fromEnv()
	fs.StringVar(&f.dataDir, "data-dir", f.dataDir, "`directory` of etcd's data and the S3 objects")
	fs.StringVar(&f.cfg.KafkaAddr, "kafka-addr", f.cfg.KafkaAddr, "Kafka listen `address` of the first agent (port 0: any free port)")
	fs.StringVar(&f.cfg.HTTPAddr, "http-addr", f.cfg.HTTPAddr, "HTTP listen `address` of the first agent (port 0: any free port)")
	fs.StringVar(&f.cfg.InternalAddr, "internal-addr", f.cfg.InternalAddr, "internal listen `address` of the first agent, "+
		"where other agents have it sequence (port 0: any free port)")
	fs.StringVar(&f.etcdAddr, "etcd-addr", f.etcdAddr, "etcd client `address`; its peer address is the next port")
	// One limit for both ends, operations and bytes: the embedded etcd allows what its agents pack, so
	// that a flush's index commit over 1,024 partitions is one Txn.
	fs.Var(atLeastValue{&f.etcdMaxTxnOps, coord.DefaultMaxTxnOps}, "etcd-max-txn-ops", "most `operations` in one etcd Txn: "+
		"the embedded etcd's --max-txn-ops and its agents' --etcd-max-txn-ops (a flush's commit compares one leader key per partition)")
	fs.Var(sizeRangeValue{&f.etcdMaxRequestBytes, coord.DefaultMaxRequestBytes, coord.MaxMaxRequestBytes}, "etcd-max-request-bytes",
		"largest etcd request `size`: the embedded etcd's --max-request-bytes and its agents' --etcd-max-request-bytes "+
			"(Txns are packed to 2/3 of it; a flush's commit takes about 200 bytes per partition)")
	fs.Var(sizeRangeValue{&f.etcdQuotaBytes, 1 << 20, 8 << 30}, "etcd-quota-bytes",
		"the embedded etcd's --quota-backend-bytes: past this `size` it raises NOSPACE and refuses writes")
	fs.StringVar(&f.s3Addr, "s3-addr", f.s3Addr, "S3 endpoint listen `address`")
	fs.IntVar(&f.agents, "agents", f.agents, "`number` of agents to run in this process (0: only etcd and S3)")
	fs.StringVar(&f.s3Profile, "s3-profile", f.s3Profile, "simulated S3 latency of the in-process agents: `profile` "+
		strings.Join(segstore.ProfileNames, ", ")+" (standard: PUT p50 30ms, p99 150ms, occasional 503 SlowDown; express: ~5ms)")
	fs.StringVar(&f.cfg.AdvertisedAddr, "advertised-addr", "", "`address` the first agent gives clients, the others "+
		"its port + i-1 (default: the Kafka listen addresses)")
	fs.StringVar(&f.zones, "az", "", "availability `zones` of the agents, comma-separated: agent i takes the i-th, "+
		"round the list again past its end (default: none)")
	fs.StringVar(&f.cfg.Group, "group", f.cfg.Group, "agent `group` of the agents")
	f.flushFlags(fs)
	f.tuningFlags(fs)
	f.topicFlags(fs, true)
	f.lifecycleFlags(fs)
	f.limitFlags(fs)
	f.log = fs.logFlags()
	fs.configFile()
	return fs, f
}

func (c *cli) dev(args []string) error {
	fs, f := c.devFlagSet()
	if _, err := fs.parseN(args, 0); err != nil {
		return err
	}
	if err := f.validate(); err != nil {
		return usageError{err}
	}
	f.shareConnections()
	log := f.log.logger(c.stderr)
	if err := os.MkdirAll(f.dataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}

	ctx, started := c.startup()
	d, err := f.start(ctx, log)
	if interrupted := started(); interrupted {
		if err == nil {
			d.close(true)
		}
		return errInterrupted
	}
	if err != nil {
		return err
	}
	d.print(c.stdout, f)
	if len(d.agents) == 0 {
		c.waitSignal(log)
		return d.close(false)
	}
	err = serve(c, log, d.agents)
	return errors.Join(err, d.close(false))
}

func (f *devFlags) validate() error {
	if f.agents < 0 || f.agents > maxDevAgents {
		return fmt.Errorf("--agents must be between 0 and %d, got %d", maxDevAgents, f.agents)
	}
	if p, err := segstore.Profile(f.s3Profile); err != nil {
		return fmt.Errorf("--s3-profile: %w", err)
	} else if p.Name != segstore.ProfileNone && f.agents == 0 {
		return errors.New("--s3-profile applies to the in-process agents, and --agents 0 runs none")
	}
	for name, addr := range map[string]string{"etcd-addr": f.etcdAddr, "s3-addr": f.s3Addr, "kafka-addr": f.cfg.KafkaAddr} {
		if _, err := offsetPort(addr, 0); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	for name, addr := range map[string]string{"http-addr": f.cfg.HTTPAddr, "internal-addr": f.cfg.InternalAddr,
		"advertised-addr": f.cfg.AdvertisedAddr} {
		if addr == "" {
			continue
		}
		if _, err := offsetPort(addr, 0); err != nil {
			return fmt.Errorf("--%s: %w", name, err)
		}
	}
	return nil
}

// shareConnections gives each in-process agent its share of the connections the open-file limit
// allows, unless --max-connections says otherwise: the agents, etcd and the S3 endpoint all draw on
// the one process's descriptors.
func (f *devFlags) shareConnections() {
	if f.cfg.MaxConnections != 0 || f.agents == 0 {
		return
	}
	if n := agent.MaxConnectionsForFileLimit(); n > 0 {
		f.cfg.MaxConnections = max(1, n/f.agents)
	}
}

// devCluster is what dev runs; close stops it in reverse order of start.
type devCluster struct {
	etcd    *coord.Embedded
	s3      *segstore.S3Server
	clients []*coord.Client
	agents  []*agent.Agent
}

// devAgentPrefix names dev mode's in-process agents: dev-1, dev-2, …
const devAgentPrefix = "dev-"

func (f *devFlags) start(ctx context.Context, log hclog.Logger) (_ *devCluster, err error) {
	d := &devCluster{}
	defer func() {
		if err != nil {
			d.close(true) // whatever did start
		}
	}()
	if d.etcd, err = f.startEtcd(ctx, log); err != nil {
		return nil, err
	}
	if d.s3, err = f.startS3(log); err != nil {
		return nil, err
	}
	if err = f.evictPreviousAgents(ctx, d.etcd.Endpoints(), log); err != nil {
		return nil, err
	}
	for i := 1; i <= f.agents; i++ {
		cfg, err := f.agentConfig(i, log)
		if err != nil {
			return nil, err
		}
		a, client, err := startAgent(ctx, cfg, f.coordConfig(d.etcd.Endpoints(), cfg), f.s3Config(d.s3URL()),
			cfg.Registerer, f.s3Latency(i))
		if err != nil {
			return nil, err
		}
		d.agents, d.clients = append(d.agents, a), append(d.clients, client)
	}
	return d, nil
}

// evictPreviousAgents revokes the leases of dev agents left registered by a previous run that was
// killed: dev mode owns its etcd, so they are certainly gone, and waiting out their TTL would keep
// a restart on other ports from registering the same ids.
func (f *devFlags) evictPreviousAgents(ctx context.Context, endpoints []string, log hclog.Logger) error {
	c, err := coord.Connect(ctx, coord.Config{Endpoints: endpoints, Logger: quiet(log)})
	if err != nil {
		return err
	}
	defer c.Close()
	agents, err := c.Agents(ctx)
	if err != nil {
		return err
	}
	for _, a := range agents {
		if strings.HasPrefix(a.ID, devAgentPrefix) {
			if err := c.Evict(ctx, a.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *devFlags) startEtcd(ctx context.Context, log hclog.Logger) (*coord.Embedded, error) {
	cfg, err := f.embedConfig(log)
	if err != nil {
		return nil, err
	}
	e, err := coord.StartEmbedded(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd: %w", err)
	}
	return e, nil
}

func (f *devFlags) embedConfig(log hclog.Logger) (coord.EmbedConfig, error) {
	peer, err := offsetPort(f.etcdAddr, 1)
	if err != nil {
		return coord.EmbedConfig{}, err
	}
	return coord.EmbedConfig{Dir: filepath.Join(f.dataDir, "etcd"), Name: "dev", ClientAddr: f.etcdAddr, PeerAddr: peer,
		MaxTxnOps: f.etcdMaxTxnOps, MaxRequestBytes: f.etcdMaxRequestBytes, QuotaBytes: f.etcdQuotaBytes, Logger: quiet(log)}, nil
}

// coordConfig is the etcd client configuration of an in-process agent: it packs Txns to the limits
// the embedded etcd was started with.
func (f *devFlags) coordConfig(endpoints []string, cfg agent.Config) coord.Config {
	return coord.Config{Endpoints: endpoints, MaxTxnOps: f.etcdMaxTxnOps, MaxRequestBytes: f.etcdMaxRequestBytes,
		Logger: cfg.Logger, Registerer: cfg.Registerer}
}

func (f *devFlags) startS3(log hclog.Logger) (*segstore.S3Server, error) {
	dir := filepath.Join(f.dataDir, "s3")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("s3 data dir: %w", err)
	}
	srv, err := segstore.NewS3Server(segstore.S3ServerConfig{Dir: dir, Bucket: devBucket, Logger: quiet(log)})
	if err != nil {
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	ln, err := net.Listen("tcp", f.s3Addr)
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	if err := srv.Start(ln); err != nil {
		_ = ln.Close()
		_ = srv.Close()
		return nil, fmt.Errorf("embedded s3: %w", err)
	}
	return srv, nil
}

// agentConfig is the configuration of dev agent i (1-based).
func (f *devFlags) agentConfig(i int, log hclog.Logger) (agent.Config, error) {
	cfg := f.cfg
	cfg.ID = devAgentPrefix + strconv.Itoa(i)
	var err error
	if cfg.KafkaAddr, err = offsetPort(f.cfg.KafkaAddr, i-1); err != nil {
		return cfg, err
	}
	if cfg.HTTPAddr != "" {
		if cfg.HTTPAddr, err = offsetPort(f.cfg.HTTPAddr, i-1); err != nil {
			return cfg, err
		}
	}
	if cfg.InternalAddr != "" {
		if cfg.InternalAddr, err = offsetPort(f.cfg.InternalAddr, i-1); err != nil {
			return cfg, err
		}
	}
	if cfg.AdvertisedAddr != "" {
		if cfg.AdvertisedAddr, err = offsetPort(f.cfg.AdvertisedAddr, i-1); err != nil {
			return cfg, err
		}
	}
	if zones := splitList(f.zones); len(zones) > 0 {
		cfg.AZ = zones[(i-1)%len(zones)]
	}
	reg := newRegistry() // one per agent: each serves its own /metrics
	cfg.Logger, cfg.Registerer, cfg.Gatherer, cfg.Version = log.Named(cfg.ID), reg, reg, buildVersion()
	return cfg, nil
}

// s3Latency wraps agent i's store in the --s3-profile, seeded by i so that runs are reproducible.
func (f *devFlags) s3Latency(i int) func(segstore.Store) segstore.Store {
	p, _ := segstore.Profile(f.s3Profile) // validated
	return func(s segstore.Store) segstore.Store { return segstore.WithProfile(s, p, uint64(i)) }
}

func (f *devFlags) s3Config(endpoint string) segstore.S3Config {
	return segstore.S3Config{Endpoint: endpoint, Bucket: devBucket, Region: devRegion, PathStyle: true,
		AccessKeyID: devCredential, SecretAccessKey: devCredential}
}

// offsetPort adds delta to the port of a host:port address; port 0 (any free port) stays 0.
func offsetPort(addr string, delta int) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", fmt.Errorf("address %q: bad port", addr)
	}
	if p == 0 {
		return addr, nil
	}
	if p+delta > 65535 {
		return "", fmt.Errorf("address %q: port %d out of range", addr, p+delta)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+delta)), nil
}

// urls gives host:port endpoints an http:// scheme, as etcd's own tools print them.
func urls(eps []string) []string {
	out := make([]string, len(eps))
	for i, ep := range eps {
		if !strings.Contains(ep, "://") {
			ep = "http://" + ep
		}
		out[i] = ep
	}
	return out
}

func (d *devCluster) s3URL() string { return urls([]string{d.s3.Endpoint()})[0] }

// print tells the user, on stdout, where everything listens.
func (d *devCluster) print(w io.Writer, f *devFlags) {
	etcd := strings.Join(urls(d.etcd.Endpoints()), ",")
	fmt.Fprintf(w, "data dir: %s\n", f.dataDir)
	fmt.Fprintf(w, "etcd endpoint: %s\n", etcd)
	fmt.Fprintf(w, "s3 endpoint: %s\n", d.s3URL())
	fmt.Fprintf(w, "s3 bucket: %s\n", devBucket)
	for _, a := range d.agents {
		fmt.Fprintf(w, "kafka address: %s\n", a.KafkaAddr())
		if a.HTTPAddr() != "" {
			fmt.Fprintf(w, "http address: http://%s\n", a.HTTPAddr())
		}
		if a.InternalAddr() != "" {
			fmt.Fprintf(w, "internal address: %s\n", a.InternalAddr())
		}
	}
	if len(d.agents) == 0 {
		fmt.Fprintf(w, "start an agent with: AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s streamhouse agent"+
			" --etcd %s --s3-endpoint %s --s3-bucket %s --s3-path-style --id agent-1 --kafka-addr %s --http-addr %s"+
			" --internal-addr %s --etcd-max-txn-ops %d --etcd-max-request-bytes %s\n",
			devCredential, devCredential, etcd, d.s3URL(), devBucket, f.cfg.KafkaAddr, f.cfg.HTTPAddr, f.cfg.InternalAddr,
			f.etcdMaxTxnOps, formatSize(f.etcdMaxRequestBytes))
	}
	fmt.Fprintln(w, "ready; Ctrl-C to stop")
}

// close stops the agents (at once when abort, else they were shut down already), then the etcd clients,
// the S3 endpoint and etcd.
func (d *devCluster) close(abort bool) error {
	if abort {
		closeAll(d.agents)
	}
	var errs []error
	for _, c := range d.clients {
		errs = append(errs, c.Close())
	}
	if d.s3 != nil {
		errs = append(errs, d.s3.Close())
	}
	if d.etcd != nil {
		d.etcd.Close()
	}
	return errors.Join(errs...)
}
