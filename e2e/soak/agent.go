package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// With --agent-process the soak runs "streamhouse dev --agents 0" (etcd and the S3 endpoint only) and
// the agent as a process of its own, started with the command dev prints: the memory figures are then
// the agent's alone, as in production, where etcd and the object store run elsewhere, and the restart
// check restarts the agent only.

// cluster is what the soak runs: the process it measures (dev, or the agent) and, with
// --agent-process, dev serving etcd and S3 to it.
type cluster struct {
	measured *devProc
	infra    *devProc // nil without --agent-process
}

// startCluster starts dev on dataDir and, with --agent-process, the agent beside it.
func startCluster(cfg config, runDir, name, dataDir string) (cluster, error) {
	if !cfg.agentProcess {
		d, err := startDev(cfg.bin, runDir, name, dataDir, cfg.agents, cfg.devArgs)
		return cluster{measured: d}, err
	}
	d, err := startDev(cfg.bin, runDir, name, dataDir, 0, cfg.devArgs)
	if err != nil {
		return cluster{}, err
	}
	a, err := startAgentProc(cfg.bin, runDir, name+"-agent", d, cfg.agentArgs)
	if err != nil {
		d.kill()
		return cluster{}, err
	}
	return cluster{measured: a, infra: d}, nil
}

// terminate stops the agent, then dev.
func (c cluster) terminate() error {
	if err := c.measured.terminate(); err != nil {
		if c.infra != nil {
			c.infra.kill()
		}
		return err
	}
	if c.infra != nil {
		return c.infra.terminate()
	}
	return nil
}

func (c cluster) kill() {
	for _, p := range []*devProc{c.measured, c.infra} {
		if p != nil && !p.exited() {
			p.kill()
		}
	}
}

// agentStartedMsg is the log message an agent writes once it serves, with its addresses.
const agentStartedMsg = "agent started"

// startAgentProc starts "streamhouse agent" as dev (run with --agents 0) prints it, with extra flags
// and JSON logs, and waits until its /readyz answers 200. The devProc it returns carries dev's etcd
// and S3 endpoints, so that a sampler measures the agent's process against dev's stores.
func startAgentProc(bin, runDir, name string, dev *devProc, extra []string) (*devProc, error) {
	lines, err := readLines(dev.out)
	if err != nil {
		return nil, err
	}
	env, args, err := agentCommand(lines)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dev.name, err)
	}
	a := &devProc{name: name, dataDir: dev.dataDir, out: filepath.Join(runDir, name+".out"),
		log: filepath.Join(runDir, name+".log"), done: make(chan struct{}), env: env,
		etcd: dev.etcd, s3: dev.s3, bucket: dev.bucket}
	if err := a.start(bin, append(append(args, extra...), "--log-format", "json")); err != nil {
		return nil, err
	}
	if err := a.waitStarted(); err != nil {
		a.kill()
		return nil, err
	}
	if err := a.waitReady(a.http[0] + "/readyz"); err != nil {
		a.kill()
		return nil, err
	}
	return a, nil
}

// agentCommand splits dev's "start an agent with: VAR=value ... streamhouse agent --flag ..." into the
// environment and the arguments after "streamhouse".
func agentCommand(lines []string) (env, args []string, err error) {
	for _, l := range lines {
		cmd, ok := strings.CutPrefix(l, "start an agent with: ")
		if !ok {
			continue
		}
		fields := strings.Fields(cmd)
		for i, f := range fields {
			if f == "streamhouse" {
				return fields[:i], fields[i+1:], nil
			}
		}
		return nil, nil, fmt.Errorf("no streamhouse command in %q", cmd)
	}
	return nil, nil, fmt.Errorf("printed no agent command (run with --agents 0)")
}

// waitStarted polls the agent's JSON log for its start line and takes its addresses from it.
func (d *devProc) waitStarted() error {
	deadline := time.Now().Add(startTimeout)
	for {
		lines, err := readLines(d.log)
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		for _, l := range lines {
			var rec struct {
				Msg   string `json:"@message"`
				Kafka string `json:"kafka"`
				HTTP  string `json:"http"`
			}
			if json.Unmarshal([]byte(l), &rec) != nil || rec.Msg != agentStartedMsg {
				continue
			}
			if rec.Kafka == "" || rec.HTTP == "" {
				return fmt.Errorf("%s: no kafka or http address in %s", d.name, l)
			}
			d.kafka, d.http = []string{rec.Kafka}, []string{"http://" + rec.HTTP}
			return nil
		}
		switch {
		case d.exited():
			return fmt.Errorf("%s exited (%v); its log:\n%s", d.name, d.cmd.ProcessState, d.tail())
		case time.Now().After(deadline):
			return fmt.Errorf("%s: not started within %v; its log:\n%s", d.name, startTimeout, d.tail())
		}
		time.Sleep(20 * time.Millisecond) // polling a file the child writes
	}
}
