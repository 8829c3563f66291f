package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Time limits of the processes: they bound waits that normally end in well under a second.
const (
	startTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
)

// devCredential is the access key and secret of dev mode's S3 endpoint (any value is accepted).
const devCredential = "streamhouse"

// proc is a running streamhouse process: stdout and stderr go to files in the run's directory.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string // path of its stderr
	out  string // path of its stdout
	done chan struct{}
}

func startProc(dir, name, bin string, env []string, args ...string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), out: filepath.Join(dir, name+".out"), done: make(chan struct{})}
	stdout, err := os.Create(p.out)
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(p.log)
	if err != nil {
		stdout.Close()
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = stdout, stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	if err := p.cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls path (one of p's output files) until find accepts a line, within startTimeout.
func (p *proc) waitFor(path string, find func(line string) bool) error {
	deadline := time.Now().Add(startTimeout)
	for {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		found := false
		for sc.Scan() && !found {
			found = find(sc.Text())
		}
		f.Close()
		switch {
		case found:
			return nil
		case p.exited():
			return fmt.Errorf("%s exited (%v); its log:\n%s", p.name, p.cmd.ProcessState, p.tail())
		case time.Now().After(deadline):
			return fmt.Errorf("%s: not started within %v; its log:\n%s", p.name, startTimeout, p.tail())
		}
		time.Sleep(20 * time.Millisecond) // polling a file the child writes
	}
}

// tail is the end of the process's log.
func (p *proc) tail() string {
	b, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// terminate sends SIGTERM and waits for the exit, which must be 0.
func (p *proc) terminate() error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.waitExit()
}

func (p *proc) waitExit() error {
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM", p.name, stopTimeout)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited %d after SIGTERM; its log:\n%s", p.name, code, p.tail())
	}
	return nil
}

func (p *proc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// devProc is "streamhouse dev --agents 0": etcd and S3 only.
type devProc struct {
	*proc
	etcd, s3 string
}

func startDev(bin, dir string) (*devProc, error) {
	p, err := startProc(dir, "dev", bin, nil, "dev", "--agents", "0", "--data-dir", filepath.Join(dir, "data"),
		"--etcd-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d := &devProc{proc: p}
	if err := p.waitFor(p.out, func(l string) bool { return strings.HasPrefix(l, "ready") }); err != nil {
		p.kill()
		return nil, err
	}
	b, _ := os.ReadFile(p.out)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "etcd endpoint: "); ok {
			d.etcd = v
		}
		if v, ok := strings.CutPrefix(l, "s3 endpoint: "); ok {
			d.s3 = v
		}
	}
	if d.etcd == "" || d.s3 == "" {
		p.kill()
		return nil, fmt.Errorf("dev printed no etcd or s3 endpoint:\n%s", b)
	}
	return d, nil
}

// agentProc is one incarnation of "streamhouse agent".
type agentProc struct {
	*proc
	id, az      string
	kafka, http string // bound addresses
	incarnation int
	acq         histogram // its lease acquisitions, as last scraped
}

// startAgent starts agent id and waits until /readyz answers 200. kafka and http are listen
// addresses (port 0: any free one).
func startAgent(bin, dir string, d *devProc, id, az string, ttl time.Duration, incarnation int, kafka, http string) (*agentProc, error) {
	name := fmt.Sprintf("%s.%d", id, incarnation)
	env := []string{"AWS_ACCESS_KEY_ID=" + devCredential, "AWS_SECRET_ACCESS_KEY=" + devCredential, "AWS_EC2_METADATA_DISABLED=true"}
	p, err := startProc(dir, name, bin, env, "agent", "--etcd", d.etcd, "--s3-endpoint", d.s3, "--s3-bucket", "streamhouse",
		"--s3-path-style", "--id", id, "--az", az, "--kafka-addr", kafka, "--http-addr", http, "--internal-addr", "127.0.0.1:0",
		"--lease-ttl", ttl.String(),
		"--log-format", "json")
	if err != nil {
		return nil, err
	}
	a := &agentProc{proc: p, id: id, az: az, incarnation: incarnation}
	err = p.waitFor(p.log, func(l string) bool {
		var f map[string]any
		if json.Unmarshal([]byte(l), &f) != nil || f["@message"] != "agent started" {
			return false
		}
		a.kafka, _ = f["kafka"].(string)
		a.http, _ = f["http"].(string)
		return true
	})
	if err == nil && (a.kafka == "" || a.http == "") {
		err = fmt.Errorf("%s: no kafka or http address in its start-up log line", name)
	}
	if err == nil {
		err = waitReady(p, "http://"+a.http+"/readyz")
	}
	if err != nil {
		p.kill()
		return nil, err
	}
	return a, nil
}

// waitReady polls url until it answers 200.
func waitReady(p *proc, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("%s exited before %s answered 200; its log:\n%s", p.name, url, p.tail())
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s did not answer 200 within %v", url, startTimeout), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
