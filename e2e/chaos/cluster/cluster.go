package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/e2e/chaos/s3fault"
	"github.com/streamhouse/streamhouse/segstore"
)

// Bucket is the S3 bucket of the cluster.
const Bucket = "streamhouse"

// Defaults of Config, and time limits: they bound waits that normally end in a second or two.
const (
	DefaultAgents   = 3
	DefaultMembers  = 3
	DefaultLeaseTTL = 3 * time.Second
	zones           = 3
	startTimeout    = 60 * time.Second
	stopTimeout     = 30 * time.Second
	healthPoll      = 100 * time.Millisecond
)

// Config says what to run.
type Config struct {
	Dir        string        // logs/, etcd/ and s3/ go here
	Bin        string        // the streamhouse binary
	EtcdBin    string        // the etcdmember binary
	Agents     int           // default DefaultAgents
	Members    int           // etcd members; default DefaultMembers
	LeaseTTL   time.Duration // agents' --lease-ttl; default DefaultLeaseTTL
	AgentFlags []string      // more flags for every agent
	// Listener, when set, is the security protocol of every agent's one Kafka listener
	// (--listeners <Listener>://<Kafka address>; its TLS and SASL settings go in AgentFlags);
	// empty: PLAINTEXT on --kafka-addr.
	Listener string
	// ScramUsers are users and passwords whose SCRAM-SHA-512 credentials are stored before the
	// first agent starts.
	ScramUsers map[string]string
	Seed       uint64 // of the S3 fault layer's choices
	Logf       func(format string, args ...any)
}

// Validate fills in defaults and rejects what cannot work.
func (cfg *Config) Validate() error {
	if cfg.Dir == "" || cfg.Bin == "" || cfg.EtcdBin == "" {
		return errors.New("cluster: Dir, Bin and EtcdBin are required")
	}
	if cfg.Agents <= 0 {
		cfg.Agents = DefaultAgents
	}
	if cfg.Members <= 0 {
		cfg.Members = DefaultMembers
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	for _, b := range []string{cfg.Bin, cfg.EtcdBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
	}
	return nil
}

// Cluster is a running cluster.
type Cluster struct {
	cfg     Config
	members []*member
	etcd    *coord.Client // straight to the members, not through any proxy

	s3          *segstore.S3Server
	s3fault     *s3fault.Layer
	s3faultSrv  *http.Server
	s3faultAddr string
	s3faultDone chan struct{}

	mu        sync.Mutex
	agents    map[string]*agent
	nextAgent int
	closeOnce sync.Once
}

// Start runs etcd, S3 and the agents, and waits until the cluster is healthy. On error it stops
// whatever it started.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, agents: map[string]*agent{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if c.members, err = newMembers(cfg.Dir, cfg.Members); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := c.startMembers(sctx); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if c.etcd, err = coord.Connect(sctx, coord.Config{Endpoints: c.memberEndpoints()}); err != nil {
		return nil, err
	}
	c.logf("etcd: %d members at %v", len(c.members), c.memberEndpoints())
	for user, pass := range cfg.ScramUsers {
		cred, err := auth.NewScramCredential(auth.MechanismScramSHA512, pass, auth.MinScramIterations)
		if err == nil {
			err = c.etcd.PutScramCredential(sctx, user, coord.ScramSHA512, cred)
		}
		if err != nil {
			return nil, fmt.Errorf("SCRAM user %s: %w", user, err)
		}
	}
	if err := c.startS3(cfg.Seed); err != nil {
		return nil, err
	}
	for range cfg.Agents {
		if _, err := c.AddAgent(ctx); err != nil {
			return nil, err
		}
	}
	return c, c.WaitHealthy(sctx)
}

func (c *Cluster) logf(format string, args ...any) { c.cfg.Logf(format, args...) }

// startS3 runs the S3 endpoint and the fault layer in front of it.
func (c *Cluster) startS3(seed uint64) error {
	srv, err := segstore.NewS3Server(segstore.S3ServerConfig{Dir: filepath.Join(c.cfg.Dir, "s3"), Bucket: Bucket})
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
	if c.s3fault, err = s3fault.New(srv.Endpoint(), seed); err != nil {
		return err
	}
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	c.s3faultAddr = fln.Addr().String()
	c.s3faultSrv = &http.Server{Handler: c.s3fault, ReadHeaderTimeout: 10 * time.Second}
	c.s3faultDone = make(chan struct{})
	go func() {
		defer close(c.s3faultDone)
		_ = c.s3faultSrv.Serve(fln)
	}()
	c.logf("s3: %s behind the fault layer at %s", srv.Endpoint(), c.s3faultAddr)
	return nil
}

// S3Faults is the S3 fault layer every agent's S3 requests go through.
func (c *Cluster) S3Faults() *s3fault.Layer { return c.s3fault }

// LeaseTTL is the agents' lease TTL.
func (c *Cluster) LeaseTTL() time.Duration { return c.cfg.LeaseTTL }

// Dir is the directory of the run's logs and data.
func (c *Cluster) Dir() string { return c.cfg.Dir }

// Status is the cluster's status as etcd has it.
func (c *Cluster) Status(ctx context.Context) (coord.ClusterStatus, error) {
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return c.etcd.Status(sctx)
}

// Healthy reports why the cluster is not healthy: every etcd member runs and agrees on a leader;
// every agent runs, is not paused and answers /readyz 200; etcd registers exactly the running
// agents; and every partition (the consumer offsets' too) is led by one of them.
func (c *Cluster) Healthy(ctx context.Context) error {
	if err := c.etcdHealthy(ctx); err != nil {
		return err
	}
	running := c.runningAgents()
	c.mu.Lock()
	all := len(c.agents)
	c.mu.Unlock()
	if len(running) != all {
		return fmt.Errorf("%d of %d agents running", len(running), all)
	}
	for id, a := range running {
		if err := ready(ctx, a.http); err != nil {
			return fmt.Errorf("agent %s /readyz: %w", id, err)
		}
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	var registered []string
	for _, a := range st.Agents {
		registered = append(registered, a.ID)
	}
	if want := slices.Sorted(maps.Keys(running)); !slices.Equal(registered, want) {
		return fmt.Errorf("etcd registers agents %v, running: %v", registered, want)
	}
	for _, p := range st.Partitions {
		if p.Leader == nil {
			return fmt.Errorf("partition %s/%d has no leader", p.Topic, p.Partition)
		}
		if _, ok := running[*p.Leader]; !ok {
			return fmt.Errorf("partition %s/%d is led by %s, which is not running", p.Topic, p.Partition, *p.Leader)
		}
	}
	return nil
}

// WaitHealthy waits until Healthy has nothing to report, or ctx ends; then it returns the last
// reason.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	tick := time.NewTicker(healthPoll)
	defer tick.Stop()
	for {
		err := c.Healthy(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("cluster not healthy: %w", err)
		}
	}
}

// Close stops the agents (SIGTERM), the etcd members, the proxies and S3. Safe to call twice.
// Agents go first: they hand over and deregister while etcd still runs.
func (c *Cluster) Close() error {
	var errs []error
	c.closeOnce.Do(func() {
		c.mu.Lock()
		agents := slices.Collect(maps.Values(c.agents))
		c.mu.Unlock()
		var wg sync.WaitGroup
		errc := make(chan error, len(agents))
		for _, a := range agents {
			if a.proc != nil {
				wg.Go(func() { errc <- a.proc.stop(stopTimeout) })
			}
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			errs = append(errs, err)
		}
		for _, a := range agents {
			a.closeLinks()
		}
		if c.etcd != nil {
			_ = c.etcd.Close()
		}
		for _, m := range c.members {
			if m.proc != nil {
				errs = append(errs, m.proc.stop(stopTimeout))
			}
		}
		if c.s3faultSrv != nil {
			_ = c.s3faultSrv.Close()
			<-c.s3faultDone
		}
		if c.s3 != nil {
			errs = append(errs, c.s3.Close())
		}
	})
	return errors.Join(errs...)
}
