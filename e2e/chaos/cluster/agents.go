package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/proxy"
	"github.com/streamhouse/streamhouse/e2e/chaos/s3fault"
)

// agent is one agent id and its current process. Its etcd and S3 links are proxies of its own, so
// that a fault can cut one agent off and leave the others be.
type agent struct {
	id, az      string
	kafka, http string         // host:port, kept across restarts
	internal    string         // host:port of the internal listener, kept across restarts
	etcd        []*proxy.Proxy // one per etcd member
	s3          *proxy.Proxy   // to the S3 fault layer
	incarnation int
	proc        *proc
	paused      bool
}

func (a *agent) links() []*proxy.Proxy { return append(slices.Clone(a.etcd), a.s3) }

// newAgent picks an agent's addresses and opens its proxies.
func (c *Cluster) newAgent(id, az string) (*agent, error) {
	a := &agent{id: id, az: az}
	var err error
	if a.kafka, err = freeAddr(); err != nil {
		return nil, err
	}
	if a.http, err = freeAddr(); err != nil {
		return nil, err
	}
	if a.internal, err = freeAddr(); err != nil {
		return nil, err
	}
	for _, m := range c.members {
		p, err := proxy.Listen("127.0.0.1:0", m.client)
		if err != nil {
			a.closeLinks()
			return nil, err
		}
		a.etcd = append(a.etcd, p)
	}
	if a.s3, err = proxy.Listen("127.0.0.1:0", c.s3faultAddr); err != nil {
		a.closeLinks()
		return nil, err
	}
	return a, nil
}

func (a *agent) closeLinks() {
	for _, p := range a.links() {
		if p != nil {
			_ = p.Close()
		}
	}
}

func (c *Cluster) agentArgs(a *agent) []string {
	var eps []string
	for _, p := range a.etcd {
		eps = append(eps, "http://"+p.Addr())
	}
	args := []string{"agent", "--etcd", strings.Join(eps, ","), "--s3-endpoint", "http://" + a.s3.Addr(),
		"--s3-bucket", Bucket, "--s3-path-style", "--id", a.id, "--az", a.az,
		"--kafka-addr", a.kafka, "--http-addr", a.http, "--internal-addr", a.internal, "--lease-ttl", c.cfg.LeaseTTL.String()}
	if c.cfg.Listener != "" {
		args = append(args, "--listeners", c.cfg.Listener+"://"+a.kafka)
	}
	return append(args, c.cfg.AgentFlags...)
}

// launch starts a new process of a; the caller holds c.mu.
func (c *Cluster) launch(a *agent) error {
	if a.proc != nil && !a.proc.exited() {
		return fmt.Errorf("agent %s is running (pid %d)", a.id, a.proc.pid())
	}
	a.incarnation++
	logPath := filepath.Join(c.cfg.Dir, "logs", a.id+".log")
	p, err := startProc(fmt.Sprintf("%s#%d", a.id, a.incarnation), logPath, c.cfg.Bin,
		[]string{"AWS_ACCESS_KEY_ID=chaos", "AWS_SECRET_ACCESS_KEY=chaos"}, c.agentArgs(a)...)
	if err != nil {
		return err
	}
	a.proc, a.paused = p, false
	return nil
}

// waitReady polls the agent's /readyz until it answers 200.
func (c *Cluster) waitReady(ctx context.Context, a *agent, p *proc) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		err := ready(ctx, a.http)
		if err == nil {
			return nil
		}
		last = err.Error()
		select {
		case <-tick.C:
		case <-p.done:
			return fmt.Errorf("agent %s exited (%v) before it was ready; log %s:\n%s", p.name, p.cmd.ProcessState, p.logPath, p.tail(20))
		case <-ctx.Done():
			return fmt.Errorf("agent %s not ready within %v: %s; log %s:\n%s", p.name, startTimeout, last, p.logPath, p.tail(20))
		}
	}
}

func ready(ctx context.Context, hostport string) error {
	rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+hostport+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func (c *Cluster) agent(id string) (*agent, error) {
	a, ok := c.agents[id]
	if !ok {
		return nil, fmt.Errorf("no agent %q", id)
	}
	return a, nil
}

// Agents are the ids of the cluster's agents, running or not, sorted.
func (c *Cluster) Agents() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.agentIDs()
}

func (c *Cluster) agentIDs() []string {
	var ids []string
	for id := range c.agents {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Brokers are the Kafka addresses of every agent, running or not.
func (c *Cluster) Brokers() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var bs []string
	for _, id := range c.agentIDs() {
		bs = append(bs, c.agents[id].kafka)
	}
	return bs
}

// StartAgent starts agent id again, on its addresses, and waits until it is ready.
func (c *Cluster) StartAgent(ctx context.Context, id string) error {
	c.mu.Lock()
	a, err := c.agent(id)
	if err == nil {
		err = c.launch(a)
	}
	var p *proc
	if err == nil {
		p = a.proc
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	c.logf("started %s (pid %d)", p.name, p.pid())
	return c.waitReady(ctx, a, p)
}

// KillAgent kills agent id with SIGKILL.
func (c *Cluster) KillAgent(id string) error {
	p, err := c.agentProc(id)
	if err != nil {
		return err
	}
	c.logf("kill -9 %s (pid %d)", p.name, p.pid())
	return p.kill()
}

// StopAgent stops agent id with SIGTERM; it must hand its partitions over and exit 0.
func (c *Cluster) StopAgent(ctx context.Context, id string) error {
	p, err := c.agentProc(id)
	if err != nil {
		return err
	}
	c.logf("SIGTERM %s (pid %d)", p.name, p.pid())
	return p.stop(stopTimeout)
}

// PauseAgent stops agent id with SIGSTOP: it keeps its connections and does nothing.
func (c *Cluster) PauseAgent(id string) error { return c.pause(id, true) }

// ResumeAgent continues a paused agent with SIGCONT.
func (c *Cluster) ResumeAgent(id string) error { return c.pause(id, false) }

func (c *Cluster) pause(id string, stop bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := c.agent(id)
	if err != nil {
		return err
	}
	if a.proc == nil || a.proc.exited() {
		return fmt.Errorf("agent %s is not running", id)
	}
	sig := syscall.SIGCONT
	if stop {
		sig = syscall.SIGSTOP
	}
	c.logf("%v %s (pid %d)", sig, a.proc.name, a.proc.pid())
	if err := a.proc.signal(sig); err != nil {
		return err
	}
	a.paused = stop
	return nil
}

func (c *Cluster) agentProc(id string) (*proc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := c.agent(id)
	if err != nil {
		return nil, err
	}
	if a.proc == nil || a.proc.exited() {
		return nil, fmt.Errorf("agent %s is not running", id)
	}
	return a.proc, nil
}

// AddAgent starts an agent with a new id, in the next zone, and waits until it is ready.
func (c *Cluster) AddAgent(ctx context.Context) (string, error) {
	c.mu.Lock()
	c.nextAgent++
	id := fmt.Sprintf("a%d", c.nextAgent)
	a, err := c.newAgent(id, fmt.Sprintf("z%d", (c.nextAgent-1)%zones+1))
	if err == nil {
		c.agents[id] = a
	}
	c.mu.Unlock()
	if err != nil {
		return "", err
	}
	return id, c.StartAgent(ctx, id)
}

// RemoveAgent stops agent id with SIGTERM and forgets it.
func (c *Cluster) RemoveAgent(ctx context.Context, id string) error {
	err := c.StopAgent(ctx, id)
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.agents[id]; ok && (a.proc == nil || a.proc.exited()) {
		a.closeLinks()
		delete(c.agents, id)
	}
	return err
}

// SetEtcdLink sets the mode of every link between agent id and etcd.
func (c *Cluster) SetEtcdLink(id string, m proxy.Mode) error {
	return c.setLinks(id, m, func(a *agent) []*proxy.Proxy { return a.etcd })
}

// SetS3Link sets the mode of the link between agent id and S3.
func (c *Cluster) SetS3Link(id string, m proxy.Mode) error {
	return c.setLinks(id, m, func(a *agent) []*proxy.Proxy { return []*proxy.Proxy{a.s3} })
}

func (c *Cluster) setLinks(id string, m proxy.Mode, links func(*agent) []*proxy.Proxy) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	a, err := c.agent(id)
	if err != nil {
		return err
	}
	for _, p := range links(a) {
		p.Set(m)
	}
	return nil
}

// runningAgents are the ids of the agents whose process runs and is not paused.
func (c *Cluster) runningAgents() map[string]*agent {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := map[string]*agent{}
	for id, a := range c.agents {
		if a.proc != nil && !a.proc.exited() && !a.paused {
			m[id] = a
		}
	}
	return m
}

// SetS3Rule sets the rule of the S3 fault layer, which every agent's S3 requests go through.
func (c *Cluster) SetS3Rule(r s3fault.Rule) error { return c.s3fault.Set(r) }
