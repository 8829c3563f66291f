package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// testCLI is a cli with captured output, a fixed environment and a signal channel the test owns.
type testCLI struct {
	*cli
	out, err *bytes.Buffer
	sig      chan os.Signal
}

func newTestCLI(t *testing.T, env map[string]string, stdin string) *testCLI {
	t.Helper()
	tc := &testCLI{out: &bytes.Buffer{}, err: &bytes.Buffer{}, sig: make(chan os.Signal, 2)}
	tc.cli = &cli{
		stdin:  strings.NewReader(stdin),
		stdout: tc.out,
		stderr: tc.err,
		lookupEnv: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		signals: tc.sig,
	}
	return tc
}

// exec runs a command with fresh output buffers and returns its exit code.
func (tc *testCLI) exec(args ...string) int {
	tc.out.Reset()
	tc.err.Reset()
	return tc.run(args)
}

// mustRun runs a command and fails the test unless it exits 0.
func (tc *testCLI) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	if code := tc.exec(args...); code != 0 {
		t.Fatalf("streamhouse %s: exit %d, stderr: %s", strings.Join(args, " "), code, tc.err)
	}
	return tc.out.String()
}
