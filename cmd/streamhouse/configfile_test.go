package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const testAgentYAML = `
etcd: [e1:2379, e2:2379]
s3-bucket: from-file
flush-interval: 250ms
flush-bytes: 16MiB
az: file-az
group: file-group
auto-create-topics: true
default-partitions: 6
etcd-user: sh
etcd-password: hunter2
lease-ttl: ~
`

// Precedence: command line, then environment, then file, then defaults.
func TestAgentConfigFile(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, testAgentYAML)
	env := map[string]string{"STREAMHOUSE_AZ": "env-az", "STREAMHOUSE_GROUP": "env-group", "STREAMHOUSE_FLUSH_BYTES": ""}
	tc := newTestCLI(t, env, "")
	fs, f := tc.agentFlagSet()
	if _, err := fs.parse([]string{"--config", path, "--group", "flag-group"}); err != nil {
		t.Fatal(err)
	}
	switch {
	case f.etcd != "e1:2379,e2:2379", f.s3.Bucket != "from-file", f.cfg.FlushInterval != 250*time.Millisecond, f.cfg.FlushBytes != 16<<20:
		t.Errorf("from the file: etcd %q bucket %q flush %v %d", f.etcd, f.s3.Bucket, f.cfg.FlushInterval, f.cfg.FlushBytes)
	case f.cfg.AZ != "env-az":
		t.Errorf("az %q: the environment beats the file", f.cfg.AZ)
	case f.cfg.Group != "flag-group":
		t.Errorf("group %q: the command line beats the environment", f.cfg.Group)
	case !f.cfg.AutoCreateTopics || f.cfg.DefaultPartitions != 6 || f.etcdAuth.user != "sh" || f.etcdAuth.password != "hunter2":
		t.Errorf("bool, int and secret keys: %v %d %q", f.cfg.AutoCreateTopics, f.cfg.DefaultPartitions, f.etcdAuth.user)
	case f.cfg.LeaseTTL != 10*time.Second:
		t.Errorf("a null key changed lease-ttl to %v", f.cfg.LeaseTTL)
	}
	// The config file's path may come from the environment too.
	tc = newTestCLI(t, map[string]string{"STREAMHOUSE_CONFIG": path}, "")
	fs, f = tc.agentFlagSet()
	if _, err := fs.parse(nil); err != nil || f.s3.Bucket != "from-file" {
		t.Fatalf("STREAMHOUSE_CONFIG: %v, bucket %q", err, f.s3.Bucket)
	}
}

func TestAgentConfigFileRefusals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ body, want string }{
		{"etcd: e\ns3-bucket: b\nflush-byte: 4MiB\n", `unknown key "flush-byte"`},
		{"etcd: e\nflush-bytes: lots\n", `invalid value "lots" for flush-bytes`},
		{"etcd-password: [a, b\n", "agent.yaml"},
		{"- a\n- b\n", "want a mapping"},
		{"etcd: {a: b}\n", "not a mapping"},
		{"config: other.yaml\n", `"config" cannot be set`},
		{"etcd: a\netcd: b\n", "etcd"},
		{"etcd: e\nlease-ttl: forever\n", ":2: invalid value"},
	} {
		path := writeConfig(t, tc.body)
		cli := newTestCLI(t, nil, "")
		if code := cli.exec("agent", "--config", path); code != exitUsage || !strings.Contains(cli.err.String(), tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want usage error with %q", tc.body, code, cli.err, tc.want)
		}
	}
	cli := newTestCLI(t, nil, "")
	if code := cli.exec("agent", "--config", filepath.Join(t.TempDir(), "missing.yaml")); code != exitUsage {
		t.Errorf("missing file: exit %d", code)
	}
}

// --print-config shows the effective configuration, secrets redacted, as YAML that --config reads
// back to the same configuration.
func TestAgentPrintConfig(t *testing.T) {
	t.Parallel()
	path := writeConfig(t, testAgentYAML)
	tc := newTestCLI(t, map[string]string{"STREAMHOUSE_ETCD_PASSWORD": "from-env"}, "")
	out := tc.mustRun(t, "agent", "--config", path, "--print-config", "--id", "a:1 #x", "--internal-addr=")
	for _, want := range []string{"etcd: e1:2379,e2:2379\n", "flush-bytes: 16MiB\n", "etcd-password: <redacted>\n", "az: file-az\n", "lease-ttl: 10s\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("--print-config lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "hunter2") || strings.Contains(out, "from-env") {
		t.Fatalf("a secret is printed:\n%s", out)
	}
	// Read back (the redacted secret aside), it is the same configuration.
	back := writeConfig(t, strings.ReplaceAll(out, "etcd-password: <redacted>\n", ""))
	tc2 := newTestCLI(t, nil, "")
	fs, f := tc2.agentFlagSet()
	if _, err := fs.parse([]string{"--config", back}); err != nil {
		t.Fatalf("reading the printed config: %v\n%s", err, out)
	}
	if f.cfg.ID != "a:1 #x" || f.etcd != "e1:2379,e2:2379" || f.cfg.FlushBytes != 16<<20 || f.etcdAuth.user != "sh" || f.cfg.InternalAddr != "" {
		t.Fatalf("read back: id %q etcd %q internal %q", f.cfg.ID, f.etcd, f.cfg.InternalAddr)
	}
	if strings.Contains(tc.mustRun(t, "agent", "--help"), "hunter2") {
		t.Fatal("help shows a secret")
	}
}
