package e2e

import (
	"net"
	"strings"
	"testing"
	"time"
)

// failFast bounds how long a start-up error may take: etcd's connect timeout (5s) and a margin.
const failFast = 10 * time.Second

// checkOneLine checks that a command failed the way the README promises: exit code want, one line
// "streamhouse: <error>" on stderr mentioning each of mention, no stack trace, within failFast.
func checkOneLine(t *testing.T, r result, want int, mention ...string) {
	t.Helper()
	t.Logf("exit %d after %v; stderr: %s", r.code, r.took.Round(time.Millisecond), r.stderr)
	if r.code != want {
		t.Errorf("exit code %d, want %d", r.code, want)
	}
	if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "streamhouse: ") {
		t.Errorf("stderr is not one line \"streamhouse: <error>\":\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "goroutine ") || strings.Contains(r.stderr, "panic:") {
		t.Errorf("stderr has a stack trace:\n%s", r.stderr)
	}
	for _, m := range mention {
		if !strings.Contains(r.stderr, m) {
			t.Errorf("stderr does not mention %q", m)
		}
	}
	if r.took > failFast {
		t.Errorf("took %v, want under %v", r.took, failFast)
	}
}

// closedAddr returns a loopback address where nothing listens: a port that was free a moment ago.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// busyAddr returns a loopback address that a listener of the test holds until the test ends.
func busyAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// Bad flags and unreachable or missing dependencies end start-up with one line and an exit code.
func TestStartupErrors(t *testing.T) {
	t.Parallel()
	needBinary(t)
	run := func(t *testing.T, env []string, args ...string) result {
		t.Helper()
		return runCmd(t, 2*failFast, "", env, bin, args...)
	}

	t.Run("unknown flag", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{"dev", "--no-such-flag"},
			{"agent", "--no-such-flag"},
			{"topic", "create", "t", "--no-such-flag"},
			{"produce", "t", "--no-such-flag"},
			{"consume", "t", "--no-such-flag"},
		} {
			checkOneLine(t, run(t, nil, args...), 2, "--no-such-flag")
		}
	})

	t.Run("unreachable etcd", func(t *testing.T) {
		t.Parallel()
		etcd := closedAddr(t)
		r := run(t, nil, "agent", "--etcd", etcd, "--s3-bucket", "x")
		checkOneLine(t, r, 1, etcd)
	})

	t.Run("missing bucket", func(t *testing.T) {
		t.Parallel()
		d := startDev(t, t.TempDir(), "--agents", "0")
		r := run(t, []string{"AWS_ACCESS_KEY_ID=streamhouse", "AWS_SECRET_ACCESS_KEY=streamhouse"},
			"agent", "--etcd", d.etcd, "--s3-endpoint", d.s3, "--s3-bucket", "nope", "--s3-path-style",
			"--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0")
		checkOneLine(t, r, 1, `bucket "nope"`)
	})

	// Reproduces a bug: any failure of dev's start-up after the data directory is open (here the Kafka
	// port is taken) panics with a nil pointer dereference in devCluster.close instead of printing the
	// error, because start's deferred cleanup reads its named result after "return nil, err" set it
	// to nil; nothing started so far is closed either.
	t.Run("dev kafka port taken", func(t *testing.T) {
		t.Parallel()
		kafka := busyAddr(t)
		r := run(t, nil, "dev", "--data-dir", t.TempDir(), "--kafka-addr", kafka, "--http-addr", "127.0.0.1:0",
			"--internal-addr", "127.0.0.1:0", "--etcd-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0")
		checkOneLine(t, r, 1, kafka)
	})
}
