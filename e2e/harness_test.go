package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Time limits of the harness. They bound waits that normally end in well under a second; reaching one
// is a failure, never a way to synchronise.
const (
	startTimeout = 60 * time.Second // until dev prints "ready" and /readyz answers 200
	stopTimeout  = 30 * time.Second // from SIGTERM to exit, before SIGKILL: above dev's 10s+5s shutdown
	cliTimeout   = 60 * time.Second // one run of a client command (streamhouse topic/produce/consume, kcat)
	logTail      = 60               // lines of a process's log shown when its test fails
)

// bin is the streamhouse binary that TestMain builds; empty under -short.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if testing.Short() {
		return m.Run() // every test skips through needBinary
	}
	dir, err := os.MkdirTemp("", "streamhouse-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "streamhouse")
	build := exec.Command("go", "build", "-o", bin, "../cmd/streamhouse")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ../cmd/streamhouse: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// needBinary skips the test under -short, where TestMain builds nothing.
func needBinary(t *testing.T) {
	t.Helper()
	if bin == "" {
		t.Skip("e2e: skipped under -short")
	}
}

// childEnv is the environment of every process a test starts: the test's own, without STREAMHOUSE_*
// variables (a developer's STREAMHOUSE_BROKERS must not redirect a test), without EC2 metadata lookups
// (the AWS chain would otherwise probe 169.254.169.254), plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STREAMHOUSE_") {
			env = append(env, kv)
		}
	}
	return append(append(env, "AWS_EC2_METADATA_DISABLED=true"), extra...)
}

// proc is a long-running streamhouse process (dev or agent). Its stdout is kept as lines; its stderr,
// the log, goes to a file in the test's temp dir whose tail is shown when the test fails. Cleanup
// stops it with SIGTERM, then SIGKILL; the kernel kills it if the test binary dies first (Pdeathsig).
type proc struct {
	name    string
	cmd     *exec.Cmd
	out     *lineWriter // stdout
	log     *lineWriter // stderr, also written to logPath
	logPath string
	done    chan struct{} // closed when the process has exited and its output is read
}

// startProc starts the streamhouse binary with args; the process is stopped when the test ends.
func startProc(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	needBinary(t)
	return startProgram(t, name, env, bin, args...)
}

// startLimited is startProc with the process's open-file limit lowered to nofile, soft and hard, as a
// shell's ulimit sets it (0: as it is): a connection flood then meets it with a few hundred connections.
func startLimited(t *testing.T, name string, env []string, nofile int, args ...string) *proc {
	t.Helper()
	if nofile == 0 {
		return startProc(t, name, env, args...)
	}
	needBinary(t)
	script := fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, nofile)
	return startProgram(t, name, env, "/bin/sh", append([]string{"-c", script, bin}, args...)...)
}

// startProgram is startProc of another program (a shell that sets a limit, then runs streamhouse).
func startProgram(t *testing.T, name string, env []string, program string, args ...string) *proc {
	t.Helper()
	dir := t.TempDir()
	p := &proc{name: name, logPath: filepath.Join(dir, name+".log"), done: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	p.out, p.log = newLineWriter(), newLineWriter()
	p.cmd = exec.Command(program, args...)
	p.cmd.Env, p.cmd.Stdout, p.cmd.Stderr = childEnv(env...), p.out, io.MultiWriter(logFile, p.log)
	p.cmd.SysProcAttr = procAttr()
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop(t)
		if t.Failed() {
			t.Logf("%s: streamhouse %s\nstdout:\n%s\nlast %d lines of the log:\n%s",
				name, strings.Join(args, " "), p.out.text(), logTail, p.logTail())
		}
	})
	t.Logf("%s: pid %d: streamhouse %s", name, p.cmd.Process.Pid, strings.Join(args, " "))
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the exit, sending SIGKILL after stopTimeout. It returns the exit
// code (-1 when killed by a signal); calling it again returns the same code. A graceful stop is
// expected to exit 0: anything else is reported as a test error.
func (p *proc) stop(t *testing.T) int {
	t.Helper()
	if !p.exited() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopTimeout):
			t.Errorf("%s did not exit within %v of SIGTERM: sending SIGKILL", p.name, stopTimeout)
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("%s exited %d after SIGTERM, want 0 (%v)", p.name, code, p.cmd.ProcessState)
		}
	}
	return p.cmd.ProcessState.ExitCode()
}

// kill sends SIGKILL, as a crash or the OOM killer would, and waits for the exit.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		t.Fatalf("kill %s: %v", p.name, err)
	}
	<-p.done
}

// waitLine waits until the process prints a stdout line starting with prefix and returns the rest of
// that line. It fails the test if the process exits first or nothing comes within timeout.
func (p *proc) waitLine(t *testing.T, prefix string, timeout time.Duration) string {
	t.Helper()
	return p.wait(t, p.out, fmt.Sprintf("a stdout line %q", prefix), timeout, func(l string) (string, bool) {
		return strings.CutPrefix(l, prefix)
	})
}

// line returns the rest of the stdout line that starts with prefix, which must have been printed.
func (p *proc) line(t *testing.T, prefix string) string {
	t.Helper()
	v, ok := p.out.find(func(l string) (string, bool) { return strings.CutPrefix(l, prefix) })
	if !ok {
		t.Fatalf("%s printed no line %q; stdout:\n%s", p.name, prefix, p.out.text())
	}
	return v
}

// waitLog waits for a JSON log line (--log-format json) whose message is msg and returns its fields.
func (p *proc) waitLog(t *testing.T, msg string, timeout time.Duration) map[string]any {
	t.Helper()
	var fields map[string]any
	p.wait(t, p.log, fmt.Sprintf("a log line %q", msg), timeout, func(l string) (string, bool) {
		fields = nil
		return l, json.Unmarshal([]byte(l), &fields) == nil && fields["@message"] == msg
	})
	return fields
}

// wait waits until w has a line that match accepts and returns what match made of it.
func (p *proc) wait(t *testing.T, w *lineWriter, what string, timeout time.Duration, match func(string) (string, bool)) string {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if v, ok := w.find(match); ok {
			return v
		}
		select {
		case <-w.changed:
		case <-p.done:
			if v, ok := w.find(match); ok {
				return v
			}
			t.Fatalf("%s exited (%v) before printing %s", p.name, p.cmd.ProcessState, what)
		case <-deadline:
			t.Fatalf("%s printed no %s within %v", p.name, what, timeout)
		}
	}
}

// logErrors returns the error-level lines of the log, in text or JSON format.
func (p *proc) logErrors() []string {
	p.log.mu.Lock()
	defer p.log.mu.Unlock()
	var errs []string
	for _, l := range p.log.lines {
		if strings.Contains(l, " [ERROR] ") || strings.Contains(l, `"@level":"error"`) {
			errs = append(errs, l)
		}
	}
	return errs
}

func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.SplitAfter(string(b), "\n")
	return strings.Join(lines[max(0, len(lines)-logTail):], "")
}

// lineWriter keeps what a process writes as lines and signals each new one on changed.
type lineWriter struct {
	mu      sync.Mutex
	partial []byte
	lines   []string
	changed chan struct{} // capacity 1: a waiter rechecks after each signal
}

func newLineWriter() *lineWriter { return &lineWriter{changed: make(chan struct{}, 1)} }

func (w *lineWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, string(w.partial[:i]))
		w.partial = w.partial[i+1:]
	}
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
	return len(b), nil
}

// find returns what match makes of the first line it accepts.
func (w *lineWriter) find(match func(string) (string, bool)) (string, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, l := range w.lines {
		if v, ok := match(l); ok {
			return v, true
		}
	}
	return "", false
}

// all returns the rest of every line that starts with prefix.
func (w *lineWriter) all(prefix string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var vs []string
	for _, l := range w.lines {
		if v, ok := strings.CutPrefix(l, prefix); ok {
			vs = append(vs, v)
		}
	}
	return vs
}

func (w *lineWriter) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n") + string(w.partial)
}

// dev is a running "streamhouse dev" and the addresses it printed.
type dev struct {
	*proc
	dataDir string
	etcd    string   // etcd endpoint URL
	s3      string   // S3 endpoint URL
	bucket  string   // S3 bucket
	kafka   []string // Kafka address of each agent
	http    []string // HTTP base URL of each agent
}

// startDev runs "streamhouse dev" on dataDir with every port 0 (the binary prints what it bound) and
// waits until it prints "ready" and every agent's /readyz answers 200. args are extra dev flags.
func startDev(t *testing.T, dataDir string, args ...string) *dev {
	t.Helper()
	return startDevLimited(t, dataDir, 0, args...)
}

// startDevLimited is startDev with the process's open-file limit lowered to nofile (0: as it is).
func startDevLimited(t *testing.T, dataDir string, nofile int, args ...string) *dev {
	t.Helper()
	args = append([]string{"dev", "--data-dir", dataDir, "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--internal-addr", "127.0.0.1:0", "--etcd-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0"}, args...)
	d := &dev{proc: startLimited(t, "dev", nil, nofile, args...), dataDir: dataDir}
	d.waitLine(t, "ready", startTimeout)
	d.etcd, d.s3, d.bucket = d.line(t, "etcd endpoint: "), d.line(t, "s3 endpoint: "), d.line(t, "s3 bucket: ")
	d.kafka, d.http = d.out.all("kafka address: "), d.out.all("http address: ")
	for _, u := range d.http {
		waitReady(t, d.proc, u+"/readyz")
	}
	return d
}

// brokers is the first agent's Kafka address.
func (d *dev) brokers(t *testing.T) string {
	t.Helper()
	if len(d.kafka) == 0 {
		t.Fatalf("dev printed no kafka address:\n%s", d.out.text())
	}
	return d.kafka[0]
}

// waitReady polls url until it answers 200, failing the test if p exits first or startTimeout passes.
func waitReady(t *testing.T, p *proc, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := "no answer"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-tick.C:
		case <-p.done:
			t.Fatalf("%s exited (%v) before %s answered 200", p.name, p.cmd.ProcessState, url)
		case <-ctx.Done():
			t.Fatalf("%s did not answer 200 within %v; last: %s", url, startTimeout, last)
		}
	}
}

// result is how a command that ran to completion ended.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// runCmd runs a command to completion (killed after timeout) with stdin and returns its outcome.
func runCmd(t *testing.T, timeout time.Duration, stdin string, env []string, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = childEnv(env...), strings.NewReader(stdin), &stdout, &stderr
	cmd.SysProcAttr = procAttr()
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: still running after %v; stderr:\n%s", name, strings.Join(args, " "), timeout, r.stderr)
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", name, err)
	}
	return r
}

// mustRun runs a command and fails the test unless it exits 0; it returns stdout.
func mustRun(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	r := runCmd(t, cliTimeout, stdin, nil, name, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: exit %d after %v; stderr:\n%s", name, strings.Join(args, " "), r.code, r.took, r.stderr)
	}
	return r.stdout
}

// sh runs a streamhouse client command (topic, produce, consume) against brokers.
func sh(t *testing.T, brokers, stdin string, args ...string) string {
	t.Helper()
	needBinary(t)
	return mustRun(t, stdin, bin, append(args, "--brokers", brokers)...)
}

// createTopic creates a topic with the streamhouse CLI.
func createTopic(t *testing.T, brokers, topic string, partitions int) {
	t.Helper()
	sh(t, brokers, "", "topic", "create", "--partitions", fmt.Sprint(partitions), topic)
}
