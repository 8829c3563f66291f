package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process: its stdout and stderr go to one log file. The kernel kills it if the
// chaos runner dies (Pdeathsig), so that no process outlives a run.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	ready   *lineWatch    // closes its channel when the process prints a line "ready"
	done    chan struct{} // closed once the process has exited and its log is closed
}

func startProc(name, logPath, bin string, env []string, args ...string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(logFile, "# %s: %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	p := &proc{name: name, logPath: logPath, ready: newLineWatch("ready"), done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = childEnv(env...)
	p.cmd.Stdout = io.MultiWriter(logFile, p.ready)
	p.cmd.Stderr = logFile
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// childEnv is the runner's environment without STREAMHOUSE_* variables (a developer's settings must
// not change the cluster) and without EC2 metadata lookups, plus extra.
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STREAMHOUSE_") {
			env = append(env, kv)
		}
	}
	return append(append(env, "AWS_EC2_METADATA_DISABLED=true"), extra...)
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s has exited (%v)", p.name, p.cmd.ProcessState)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("%s: %v: %w", p.name, sig, err)
	}
	return nil
}

// kill sends SIGKILL, as a crash or the OOM killer would, and waits for the exit.
func (p *proc) kill() error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Kill(); err != nil && !p.exited() {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// stop sends SIGTERM (and SIGCONT, should the process be paused) and waits for the exit, sending
// SIGKILL after timeout. It fails unless the process exited 0 on its own.
func (p *proc) stop(timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Process.Signal(syscall.SIGCONT)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM: killed", p.name, timeout)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		return fmt.Errorf("%s exited %d after SIGTERM (%v); its log: %s", p.name, code, p.cmd.ProcessState, p.logPath)
	}
	return nil
}

// waitReady waits until the process prints "ready", exits, or ctx ends.
func (p *proc) waitReady(ctx context.Context) error {
	select {
	case <-p.ready.seen:
		return nil
	case <-p.done:
		return fmt.Errorf("%s exited (%v) before it was ready; log %s:\n%s", p.name, p.cmd.ProcessState, p.logPath, p.tail(20))
	case <-ctx.Done():
		return fmt.Errorf("%s not ready: %w; log %s:\n%s", p.name, ctx.Err(), p.logPath, p.tail(20))
	}
}

// tail is the end of the process's log.
func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// lineWatch is a writer that closes seen when a line equal to want has been written.
type lineWatch struct {
	want    string
	mu      sync.Mutex
	partial []byte
	seen    chan struct{}
	once    sync.Once
}

func newLineWatch(want string) *lineWatch {
	return &lineWatch{want: want, seen: make(chan struct{})}
}

func (w *lineWatch) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, b...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		if string(bytes.TrimSpace(w.partial[:i])) == w.want {
			w.once.Do(func() { close(w.seen) })
		}
		w.partial = w.partial[i+1:]
	}
	return len(b), nil
}
