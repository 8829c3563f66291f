package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Time limits of the dev processes: they bound waits that normally end within seconds. A restart
// with a long history may take longer to become ready, which is what the restart check measures,
// so the limit is generous.
const (
	startTimeout = 5 * time.Minute
	stopTimeout  = 60 * time.Second
)

// devCredential is the access key and secret the soak gives dev mode's S3 endpoint (it accepts any).
const devCredential = "streamhouse"

// devProc is a running "streamhouse dev", or agent (agent.go): its stdout and stderr go to files in the
// run's directory.
type devProc struct {
	name    string
	dataDir string
	cmd     *exec.Cmd
	out     string // path of its stdout, where it prints its endpoints
	log     string // path of its stderr
	done    chan struct{}
	started time.Time
	env     []string // added to the soak's environment

	etcd   string   // etcd endpoint (http://host:port)
	s3     string   // S3 endpoint
	bucket string   // S3 bucket
	kafka  []string // each agent's Kafka address
	http   []string // each agent's HTTP base URL (http://host:port)
}

// startDev starts "streamhouse dev" on dataDir with every listener on a free port, and waits until it
// has printed its endpoints and every agent's /readyz answers 200.
func startDev(bin, runDir, name, dataDir string, agents int, extra []string) (*devProc, error) {
	d := &devProc{name: name, dataDir: dataDir, out: filepath.Join(runDir, name+".out"),
		log: filepath.Join(runDir, name+".log"), done: make(chan struct{})}
	args := append([]string{"dev", "--data-dir", dataDir, "--agents", strconv.Itoa(agents), "--kafka-addr", "127.0.0.1:0",
		"--http-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0", "--etcd-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0"}, extra...)
	if err := d.start(bin, args); err != nil {
		return nil, err
	}
	err := d.waitPrinted()
	if err == nil && (len(d.http) != agents || len(d.kafka) != agents) {
		err = fmt.Errorf("%s printed %d Kafka and %d http addresses for %d agents", name, len(d.kafka), len(d.http), agents)
	}
	for _, u := range d.http {
		if err == nil {
			err = d.waitReady(u + "/readyz")
		}
	}
	if err != nil {
		d.kill()
		return nil, err
	}
	return d, nil
}

func (d *devProc) start(bin string, args []string) error {
	stdout, err := os.Create(d.out)
	if err != nil {
		return err
	}
	stderr, err := os.Create(d.log)
	if err != nil {
		stdout.Close()
		return err
	}
	d.cmd = exec.Command(bin, args...)
	d.cmd.Env = append(os.Environ(), d.env...)
	d.cmd.Stdout, d.cmd.Stderr = stdout, stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the soak
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		stdout.Close()
		stderr.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	go func() {
		_ = d.cmd.Wait()
		stdout.Close()
		stderr.Close()
		close(d.done)
	}()
	return nil
}

func (d *devProc) pid() int { return d.cmd.Process.Pid }

func (d *devProc) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// waitPrinted polls dev's stdout until its "ready" line, then takes the endpoints from the lines
// before it.
func (d *devProc) waitPrinted() error {
	deadline := time.Now().Add(startTimeout)
	for {
		lines, err := readLines(d.out)
		if err != nil {
			return err
		}
		for _, l := range lines {
			if strings.HasPrefix(l, "ready") {
				return d.parseEndpoints(lines)
			}
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

func (d *devProc) parseEndpoints(lines []string) error {
	for _, l := range lines {
		if v, ok := strings.CutPrefix(l, "etcd endpoint: "); ok {
			d.etcd = strings.Split(v, ",")[0]
		}
		if v, ok := strings.CutPrefix(l, "s3 endpoint: "); ok {
			d.s3 = v
		}
		if v, ok := strings.CutPrefix(l, "s3 bucket: "); ok {
			d.bucket = v
		}
		if v, ok := strings.CutPrefix(l, "kafka address: "); ok {
			d.kafka = append(d.kafka, v)
		}
		if v, ok := strings.CutPrefix(l, "http address: "); ok {
			d.http = append(d.http, v)
		}
	}
	if d.etcd == "" || d.s3 == "" || d.bucket == "" {
		return fmt.Errorf("%s printed no etcd or S3 endpoint:\n%s", d.name, strings.Join(lines, "\n"))
	}
	return nil
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines, sc.Err()
}

// waitReady polls url until it answers 200.
func (d *devProc) waitReady(url string) error {
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
		if d.exited() {
			return fmt.Errorf("%s exited before %s answered 200; its log:\n%s", d.name, url, d.tail())
		}
		select {
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("%s did not answer 200 within %v", url, startTimeout), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tail is the end of the process's log.
func (d *devProc) tail() string {
	b, _ := os.ReadFile(d.log)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// terminate sends SIGTERM and waits for the exit, which must be 0.
func (d *devProc) terminate() error {
	if d.exited() {
		return fmt.Errorf("%s had exited (%v); its log:\n%s", d.name, d.cmd.ProcessState, d.tail())
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(stopTimeout):
		d.kill()
		return fmt.Errorf("%s did not exit within %v of SIGTERM", d.name, stopTimeout)
	}
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited %d after SIGTERM; its log:\n%s", d.name, code, d.tail())
	}
	return nil
}

func (d *devProc) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// memStatus is the resident memory of a process, from /proc/<pid>/status, in bytes.
type memStatus struct{ rss, anon, file int64 }

// readMem reads VmRSS, RssAnon and RssFile of pid; a field it cannot read is notMeasured.
func readMem(pid int) memStatus {
	m := memStatus{notMeasured, notMeasured, notMeasured}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "VmRSS":
			m.rss = kb << 10
		case "RssAnon":
			m.anon = kb << 10
		case "RssFile":
			m.file = kb << 10
		}
	}
	return m
}
