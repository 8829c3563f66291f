package main

import (
	"strings"
	"testing"
)

// A usage error or a failure is one line on stderr, "streamhouse: ...", never a stack trace or the
// usage text, with exit code 2 for usage and 1 for a runtime failure.
func TestOneLineErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		msg  string
	}{
		{"no command", nil, nil, 2, ""},
		{"unknown command", []string{"frobnicate"}, nil, 2, `unknown command "frobnicate"`},
		{"unknown flag", []string{"agent", "--etcd", "x", "--s3-bucket", "b", "--frob"}, nil, 2, "flag provided but not defined"},
		{"bad env", []string{"agent", "--etcd", "x", "--s3-bucket", "b"}, map[string]string{"STREAMHOUSE_FLUSH_BYTES": "-3"}, 2, "STREAMHOUSE_FLUSH_BYTES"},
		{"invalid config", []string{"agent", "--etcd", "x", "--s3-bucket", "b", "--flush-bytes", "1MiB", "--max-buffered-bytes", "1KiB"}, nil, 2, "max buffered bytes"},
		{"missing flag", []string{"agent"}, nil, 2, "--s3-bucket is required"},
		{"dev bad agents", []string{"dev", "--agents", "-2"}, nil, 2, "--agents"},
		{"dev bad addr", []string{"dev", "--s3-addr", "nowhere"}, nil, 2, "--s3-addr"},
		{"dev bad env", []string{"dev"}, map[string]string{"STREAMHOUSE_AGENTS": "many"}, 2, "STREAMHOUSE_AGENTS"},
		{"agent request bytes too few", []string{"agent", "--etcd", "x", "--s3-bucket", "b", "--etcd-max-request-bytes", "1KiB"}, nil, 2,
			"--etcd-max-request-bytes: want a size from 64KiB to 1GiB"},
		{"dev request bytes below etcd's", []string{"dev", "--etcd-max-request-bytes", "1MiB"}, nil, 2,
			"--etcd-max-request-bytes: want a size from 1536KiB to 1GiB"},
		{"topic without subcommand", []string{"topic"}, nil, 2, "want a subcommand"},
		{"topic unknown subcommand", []string{"topic", "shred"}, nil, 2, `unknown subcommand "shred"`},
		{"topic create without name", []string{"topic", "create", "--partitions", "3"}, nil, 2, "want 1 argument(s) (NAME)"},
		{"topic create zero partitions", []string{"topic", "create", "t", "--partitions", "0"}, nil, 2, "--partitions"},
		{"topic create bad config", []string{"topic", "create", "t", "--config", "novalue"}, nil, 2, "key=value"},
		{"produce without topic", []string{"produce"}, nil, 2, "want 1 argument(s) (TOPIC)"},
		{"consume offset without partition", []string{"consume", "t", "--offset", "5"}, nil, 2, "--offset needs --partition"},
		{"consume negative max", []string{"consume", "t", "--max", "-1"}, nil, 2, "--max"},
		{"version with argument", []string{"version", "x"}, nil, 2, "want 0 argument(s)"},
		{"unreachable broker", []string{"topic", "list", "--brokers", "127.0.0.1:1"}, nil, 1, "no Kafka broker reachable at 127.0.0.1:1"},
		{"unreachable broker from env", []string{"produce", "t"}, map[string]string{"STREAMHOUSE_BROKERS": "127.0.0.1:1"}, 1, "127.0.0.1:1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCLI(t, tc.env, "")
			code := c.run(tc.args)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			stderr := c.err.String()
			if tc.msg == "" { // usage on stderr
				if !strings.Contains(stderr, "Usage: streamhouse") {
					t.Errorf("stderr = %q, want the usage", stderr)
				}
				return
			}
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "streamhouse: ") || !strings.Contains(stderr, tc.msg) {
				t.Errorf("stderr = %q, want one line 'streamhouse: ...%s...'", stderr, tc.msg)
			}
			if c.out.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", c.out)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"Commands:", "dev", "agent", "topic", "produce", "consume", "version"}},
		{[]string{"help"}, []string{"Commands:"}},
		{[]string{"agent", "--help"}, []string{"--etcd endpoints", "[$STREAMHOUSE_ETCD]", "--flush-bytes size", "(default 4MiB)", "--s3-path-style\n",
			"--etcd-max-txn-ops operations", "(default 128) [$STREAMHOUSE_ETCD_MAX_TXN_OPS]",
			"--etcd-max-request-bytes size", "(default 1536KiB) [$STREAMHOUSE_ETCD_MAX_REQUEST_BYTES]"}},
		{[]string{"dev", "-h"}, []string{"--data-dir directory", "(default ./.streamhouse)", "--agents number", "[$STREAMHOUSE_AGENTS]",
			"--etcd-max-txn-ops operations", "(default 4096)", "--etcd-max-request-bytes size", "(default 4MiB) [$STREAMHOUSE_ETCD_MAX_REQUEST_BYTES]"}},
		{[]string{"topic", "--help"}, []string{"create", "describe"}},
		{[]string{"topic", "create", "--help"}, []string{"streamhouse topic create [flags] NAME", "--config key=value", "[$STREAMHOUSE_BROKERS]"}},
		{[]string{"produce", "--help"}, []string{"--key-separator SEP", "--partition partition"}},
		{[]string{"consume", "--help"}, []string{"--from-beginning", "--print-keys", "--timeout duration"}},
	} {
		c := newTestCLI(t, nil, "")
		if code := c.run(tc.args); code != 0 {
			t.Errorf("%q: exit %d, stderr %q", tc.args, code, c.err)
		}
		for _, w := range tc.want {
			if !strings.Contains(c.out.String(), w) {
				t.Errorf("%q: stdout lacks %q:\n%s", tc.args, w, c.out)
			}
		}
		if c.err.Len() != 0 {
			t.Errorf("%q: stderr = %q", tc.args, c.err)
		}
	}
}

func TestVersion(t *testing.T) {
	out := newTestCLI(t, nil, "").mustRun(t, "version")
	if !strings.HasPrefix(out, "streamhouse ") || strings.Count(out, "\n") != 1 {
		t.Errorf("version = %q", out)
	}
}
