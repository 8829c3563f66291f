package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/streamhouse/streamhouse/coord"
)

// The figures only separate processes can give: an agent's own resident memory and CPU time. The
// bench runs etcd and the S3 endpoint (as "streamhouse dev --agents 0" does) and three
// "streamhouse agent" processes against them.

// procAgent is one "streamhouse agent" process.
type procAgent struct {
	id   string
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// procTarget is the agent processes as a target for the workloads.
type procTarget struct{ brokers []string }

func (p procTarget) Name() string          { return "procs" }
func (p procTarget) Brokers() []string     { return p.brokers }
func (p procTarget) Agents() []*benchAgent { return nil }
func (p procTarget) Close()                {}

// procResult holds the agent-process figures.
type procResult struct {
	agents      int
	partitions  int32
	idleRSS     float64 // MiB, the largest agent's VmRSS with the partitions idle
	idleEtcdRPS float64 // requests/s the etcd server handled with the partitions idle
	load        produceSpec
	loadMiBps   float64
	cpuPerGiB   float64 // the agents' CPU seconds (utime+stime) per GiB acknowledged
	peakRSS     float64 // MiB, the largest agent's VmHWM after the load
}

func runProcs(ctx context.Context, bin string, partitions int32, idle, warm, window time.Duration, log hclog.Logger) (procResult, error) {
	r := procResult{agents: 3, partitions: partitions, load: eightProducers}
	c, err := startSH(ctx, shConfig{name: "procs", agents: 0}, log)
	if err != nil {
		return r, err
	}
	defer c.Close()
	var agents []*procAgent
	defer func() { stopProcs(agents) }()
	for i := 1; i <= r.agents; i++ {
		a, err := startProcAgent(c, bin, fmt.Sprintf("proc-%d", i))
		if err != nil {
			return r, err
		}
		agents = append(agents, a)
	}
	t, err := awaitProcAgents(ctx, c, agents)
	if err != nil {
		return r, err
	}
	if _, err := createTopic(ctx, t, partitions); err != nil {
		return r, err
	}
	// Let leadership settle: agents that joined later take their share of the partitions over.
	time.Sleep(3 * time.Second)
	etcdMetrics := "http://" + c.EtcdEndpoints()[0] + "/metrics"
	e0, err := scrapeText(etcdMetrics)
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	time.Sleep(idle)
	e1, err := scrapeText(etcdMetrics)
	if err != nil {
		return r, err
	}
	r.idleEtcdRPS = (etcdRequests(e1) - etcdRequests(e0)) / time.Since(t0).Seconds()
	for _, a := range agents {
		r.idleRSS = max(r.idleRSS, procStatusMiB(a.cmd.Process.Pid, "VmRSS"))
	}

	topic, err := createTopic(ctx, t, r.load.partitions)
	if err != nil {
		return r, err
	}
	p, err := startProducers(ctx, t, topic, r.load)
	if err != nil {
		return r, err
	}
	time.Sleep(warm)
	c0, cpu0, l0 := p.snapshot(), procsCPU(agents), time.Now()
	time.Sleep(window)
	c1, cpu1 := p.snapshot(), procsCPU(agents)
	secs := time.Since(l0).Seconds()
	p.abandon()
	gib := float64(c1.bytes-c0.bytes) / (1 << 30)
	r.loadMiBps = gib * 1024 / secs
	r.cpuPerGiB = (cpu1 - cpu0) / gib
	for _, a := range agents {
		r.peakRSS = max(r.peakRSS, procStatusMiB(a.cmd.Process.Pid, "VmHWM"))
	}
	return r, nil
}

func startProcAgent(c *shCluster, bin, id string) (*procAgent, error) {
	logf, err := os.Create(filepath.Join(c.dir, id+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "agent", "--etcd", strings.Join(c.EtcdEndpoints(), ","),
		"--s3-endpoint", c.s3.Endpoint(), "--s3-bucket", benchBucket, "--s3-path-style", "--id", id,
		"--kafka-addr", "127.0.0.1:0", "--http-addr", "", "--internal-addr", "127.0.0.1:0", "--log-level", "warn")
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+benchCredential, "AWS_SECRET_ACCESS_KEY="+benchCredential)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the bench
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	a := &procAgent{id: id, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(a.done)
	}()
	return a, nil
}

// awaitProcAgents waits until every agent process is registered and returns them as a target.
func awaitProcAgents(ctx context.Context, c *shCluster, agents []*procAgent) (procTarget, error) {
	cl, err := coord.Connect(ctx, coord.Config{Endpoints: c.EtcdEndpoints()})
	if err != nil {
		return procTarget{}, err
	}
	defer cl.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		regs, err := cl.Agents(ctx)
		if err == nil {
			byID := map[string]string{}
			for _, r := range regs {
				byID[r.ID] = r.Addr
			}
			var t procTarget
			for _, a := range agents {
				if a.addr = byID[a.id]; a.addr != "" {
					t.brokers = append(t.brokers, a.addr)
				}
			}
			if len(t.brokers) == len(agents) {
				return t, nil
			}
		}
		for _, a := range agents {
			select {
			case <-a.done:
				log, _ := os.ReadFile(filepath.Join(c.dir, a.id+".log"))
				return procTarget{}, fmt.Errorf("agent %s exited: %s", a.id, strings.TrimSpace(string(log)))
			default:
			}
		}
		if time.Now().After(deadline) {
			return procTarget{}, fmt.Errorf("agent processes not registered within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopProcs stops the agents with SIGTERM (a graceful stop), then SIGKILL after 15s.
func stopProcs(agents []*procAgent) {
	for _, a := range agents {
		_ = a.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, a := range agents {
		select {
		case <-a.done:
		case <-time.After(15 * time.Second):
			_ = a.cmd.Process.Kill()
			<-a.done
		}
	}
}

// procsCPU is the agents' CPU seconds so far, from /proc/<pid>/stat (utime + stime, in clock ticks of
// 1/100 s on Linux).
func procsCPU(agents []*procAgent) float64 {
	total := 0.0
	for _, a := range agents {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", a.cmd.Process.Pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 12 {
			ut, _ := strconv.ParseFloat(f[11], 64) // field 14 of stat: the fields after the name start at 3
			st, _ := strconv.ParseFloat(f[12], 64)
			total += (ut + st) / 100
		}
	}
	return total
}

// procStatusMiB reads a kB field (VmRSS, VmHWM) of /proc/<pid>/status, in MiB.
func procStatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nan
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return nan
}

// buildBinary builds cmd/streamhouse into dir (the suite runs from the module, as make does).
func buildBinary(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "streamhouse")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/streamhouse/streamhouse/cmd/streamhouse")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building streamhouse: %w", err)
	}
	return bin, nil
}
