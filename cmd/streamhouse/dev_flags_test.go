package main

import (
	"flag"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// devExcludedAgentFlags are the agent flags dev does not take, each with the reason. Every other agent
// flag must be a dev flag too: a developer reaching for one should not find it missing.
var devExcludedAgentFlags = map[string]string{
	"etcd":               "dev runs its own etcd (--etcd-addr says where)",
	"etcd-prefix":        "dev owns its etcd: its agents use the default prefix, which the tools read by default",
	"etcd-cacert":        "the embedded etcd serves plain HTTP on its own address, without TLS",
	"etcd-cert":          "the embedded etcd serves plain HTTP on its own address, without TLS",
	"etcd-key":           "the embedded etcd serves plain HTTP on its own address, without TLS",
	"etcd-user":          "the embedded etcd has no users (its authentication is off)",
	"etcd-password":      "the embedded etcd has no users (its authentication is off)",
	"etcd-password-file": "the embedded etcd has no users (its authentication is off)",
	"s3-endpoint":        "dev runs its own S3 endpoint (--s3-addr says where)",
	"s3-bucket":          "dev's S3 endpoint has the one bucket \"streamhouse\"",
	"s3-region":          "dev's S3 endpoint answers in any region",
	"s3-path-style":      "dev's agents address its S3 endpoint in the path, as it requires",
	"s3-cacert":          "dev's S3 endpoint serves plain HTTP",
	"id":                 "dev names its agents dev-1, dev-2, ... (and evicts a killed run's by that prefix)",
	"metrics-addr":       "dev's agents serve /metrics on their HTTP port, next to the console",
}

// listenerSecurity is why dev leaves out the listeners and their security: dev's in-process agents serve
// PLAINTEXT on --kafka-addr (+ i - 1) and plain HTTP; listeners, certificates, SASL, HTTP authentication
// and ACLs are set per agent process, so try them with 'streamhouse dev --agents 0' and 'streamhouse
// agent' processes.
const listenerSecurity = "listeners and their security (Kafka and HTTP) are per agent process: run them beside 'dev --agents 0'"

func init() {
	for _, name := range []string{"listeners", "advertised-listeners", "listener-security-protocol-map", "ssl-cert-file",
		"ssl-key-file", "ssl-client-ca-file", "ssl-client-auth", "ssl-principal-mapping-rules", "sasl-enabled-mechanisms",
		"sasl-oauthbearer-key-files", "sasl-oauthbearer-jwks-file", "sasl-oauthbearer-expected-issuer",
		"sasl-oauthbearer-expected-audience", "sasl-oauthbearer-sub-claim-name", "sasl-oauthbearer-unsecured", "super-users",
		"allow-everyone-if-no-acl-found", "authorization", "connections-max-reauth", "quota-window-num", "quota-window-size",
		"http-auth", "http-tls", "internal-ssl-ca-file", "internal-ssl-cert-file", "internal-ssl-key-file"} {
		devExcludedAgentFlags[name] = listenerSecurity
	}
	for _, name := range []string{"http-auth", "http-tls"} {
		devExcludedAgentFlags[name] = "the HTTP port's authentication checks SCRAM users and client certificates of a secured agent process"
	}
}

// Every agent flag is a dev flag or excluded above with its reason; an exclusion that dev takes after
// all, or that names no agent flag, is stale.
func TestDevTakesAgentFlags(t *testing.T) {
	agentFS, _ := newTestCLI(t, nil, "").agentFlagSet()
	devFS, _ := newTestCLI(t, nil, "").devFlagSet()
	agentFS.VisitAll(func(fl *flag.Flag) {
		reason, excluded := devExcludedAgentFlags[fl.Name]
		inDev := devFS.Lookup(fl.Name) != nil
		switch {
		case excluded && inDev:
			t.Errorf("--%s is excluded from dev (%s) but dev takes it", fl.Name, reason)
		case excluded && strings.TrimSpace(reason) == "":
			t.Errorf("--%s is excluded from dev without a reason", fl.Name)
		case !excluded && !inDev:
			t.Errorf("agent --%s is not a dev flag: add it to dev or to devExcludedAgentFlags with the reason", fl.Name)
		}
	})
	for name := range devExcludedAgentFlags {
		if agentFS.Lookup(name) == nil {
			t.Errorf("devExcludedAgentFlags names --%s, which is no agent flag", name)
		}
	}
}

// dev creates topics on first use unless told not to; a production agent does not unless told to.
func TestAutoCreateDefaults(t *testing.T) {
	devFS, dev := newTestCLI(t, nil, "").devFlagSet()
	if _, err := devFS.parseN(nil, 0); err != nil {
		t.Fatal(err)
	}
	if !dev.cfg.AutoCreateTopics {
		t.Error("dev: topics are not auto-created by default")
	}
	devFS, dev = newTestCLI(t, nil, "").devFlagSet()
	if _, err := devFS.parseN([]string{"--auto-create-topics=false"}, 0); err != nil {
		t.Fatal(err)
	}
	if dev.cfg.AutoCreateTopics {
		t.Error("dev --auto-create-topics=false: still auto-creating")
	}
	agentFS, ag := newTestCLI(t, nil, "").agentFlagSet()
	if _, err := agentFS.parseN([]string{"--s3-bucket", "b"}, 0); err != nil {
		t.Fatal(err)
	}
	if ag.cfg.AutoCreateTopics {
		t.Error("agent: topics are auto-created by default")
	}
}

// Every command that reads or writes etcd reaches dev's etcd without --etcd.
func TestEtcdDefaultsToDev(t *testing.T) {
	for _, args := range [][]string{
		{"agent"}, {"cluster", "status"}, {"user", "list"}, {"user", "add"}, {"user", "delete"},
		{"acl", "list"}, {"acl", "add"}, {"acl", "remove"}, {"quota", "list"}, {"quota", "set"}, {"quota", "delete"},
	} {
		out := newTestCLI(t, nil, "").mustRun(t, append(args, "--help")...)
		if !strings.Contains(out, "--etcd endpoints\n    \tetcd endpoints, comma-separated (default http://127.0.0.1:2379)") {
			t.Errorf("streamhouse %s --help: --etcd does not default to dev's etcd:\n%s", strings.Join(args, " "), out)
		}
	}
}

// dev's --az spreads its agents over the zones listed, and --advertised-addr moves with each agent's port.
func TestDevZonesAndAdvertised(t *testing.T) {
	fs, f := newTestCLI(t, nil, "").devFlagSet()
	if _, err := fs.parseN([]string{"--agents", "3", "--az", "a,b", "--advertised-addr", "host:19092"}, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.validate(); err != nil {
		t.Fatal(err)
	}
	for i, want := range map[int][2]string{1: {"a", "host:19092"}, 2: {"b", "host:19093"}, 3: {"a", "host:19094"}} {
		cfg, err := f.agentConfig(i, hclog.NewNullLogger())
		if err != nil || cfg.AZ != want[0] || cfg.AdvertisedAddr != want[1] {
			t.Errorf("agent %d: zone %q advertised %q (%v), want %q %q", i, cfg.AZ, cfg.AdvertisedAddr, err, want[0], want[1])
		}
	}
}
