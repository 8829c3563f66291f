package main

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/auth/authtest"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// credSource reads the credentials etcd holds, as an agent's view would.
type credSource []coord.UserCredential

func (cs credSource) ScramCredential(user, mech string) (coord.ScramCredential, bool) {
	for _, c := range cs {
		if c.User == user && c.Mechanism == mech {
			return c.ScramCredential, true
		}
	}
	return coord.ScramCredential{}, false
}

func connectEtcd(t *testing.T, endpoint string) *coord.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := coord.Connect(ctx, coord.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	ep := startEtcd(t)
	tc := newTestCLI(t, map[string]string{"STREAMHOUSE_ETCD": ep}, "s3cret\nignored\n")
	if out := tc.mustRun(t, "user", "add", "alice", "--password-stdin"); !strings.Contains(out, "SCRAM-SHA-256, SCRAM-SHA-512") {
		t.Errorf("user add: %q", out)
	}
	tc.mustRun(t, "user", "add", "bob", "--password", "pw", "--mechanism", "scram-sha-512", "--iterations", "8192")
	out := tc.mustRun(t, "user", "list")
	for _, want := range []string{"alice  SCRAM-SHA-256  4096", "alice  SCRAM-SHA-512  4096", "bob    SCRAM-SHA-512  8192"} {
		if !strings.Contains(out, want) {
			t.Errorf("user list lacks %q:\n%s", want, out)
		}
	}
	// What was stored authenticates the password, and only it.
	creds, err := connectEtcd(t, ep).ScramCredentials(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.NewSASL(auth.SASLConfig{Credentials: credSource(creds)})
	if err != nil {
		t.Fatal(err)
	}
	for pw, ok := range map[string]bool{"s3cret": true, "ignored": false} {
		ss, _ := s.Start(auth.MechanismPlain)
		if _, done, _ := ss.Step([]byte("\x00alice\x00" + pw)); done != ok {
			t.Errorf("PLAIN alice/%s: authenticated %v", pw, done)
		}
	}
	tc.mustRun(t, "user", "delete", "alice", "--mechanism", "SCRAM-SHA-512")
	if out := tc.mustRun(t, "user", "list"); strings.Contains(out, "alice  SCRAM-SHA-512") || !strings.Contains(out, "alice  SCRAM-SHA-256") {
		t.Errorf("after deleting alice's SHA-512 credential:\n%s", out)
	}
	tc.mustRun(t, "user", "delete", "alice")
	for _, bad := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"user", "delete", "alice"}, exitFailure, "no such credentials"},
		{[]string{"user", "add", "carol"}, exitUsage, "--password-stdin"},
		{[]string{"user", "add", "carol", "--password", "x", "--password-stdin"}, exitUsage, "not both"},
		{[]string{"user", "add", "carol", "--password", "x", "--iterations", "100"}, exitUsage, "at least 4096"},
		{[]string{"user", "add", "carol", "--password", "x", "--iterations", "20000"}, exitUsage, "16384"},
		{[]string{"user", "add", "carol", "--password", "x", "--mechanism", "SCRAM-SHA-1"}, exitUsage, "SCRAM-SHA-1"},
	} {
		if code := tc.exec(bad.args...); code != bad.code || !strings.Contains(tc.err.String(), bad.msg) {
			t.Errorf("%v: exit %d, stderr %q; want %d with %q", bad.args, code, tc.err, bad.code, bad.msg)
		}
	}
}

func TestACLCommands(t *testing.T) {
	t.Parallel()
	ep := startEtcd(t)
	tc := newTestCLI(t, map[string]string{"STREAMHOUSE_ETCD": ep}, "")
	out := tc.mustRun(t, "acl", "add", "--allow-principal", "User:alice", "--operation", "Read", "--operation", "Describe",
		"--topic", "orders", "--topic", "payments", "--group", "g1")
	if !strings.Contains(out, "added 6 ACL binding(s)") {
		t.Errorf("acl add: %s", out)
	}
	tc.mustRun(t, "acl", "add", "--deny-principal", "User:*", "--deny-host", "10.0.0.9", "--operation", "write",
		"--topic", "ord", "--resource-pattern-type", "prefixed")
	tc.mustRun(t, "acl", "add", "--allow-principal", "User:ops", "--cluster")
	// The bindings as the authorizer reads them.
	stored, err := connectEtcd(t, ep).ACLs(context.Background())
	if err != nil || len(stored) != 8 {
		t.Fatalf("stored %d bindings, %v; want 8", len(stored), err)
	}
	for _, tcase := range []struct {
		args []string
		want int
	}{
		{[]string{"acl", "list"}, 8},
		{[]string{"acl", "list", "--principal", "User:alice"}, 6},
		{[]string{"acl", "list", "--topic", "orders"}, 2},
		{[]string{"acl", "list", "--topic", "orders", "--resource-pattern-type", "match"}, 3},
		{[]string{"acl", "list", "--cluster"}, 1},
	} {
		out := tc.mustRun(t, tcase.args...)
		if n := strings.Count(out, "\n") - 1; n != tcase.want {
			t.Errorf("%v: %d bindings, want %d:\n%s", tcase.args, n, tcase.want, out)
		}
	}
	if out := tc.mustRun(t, "acl", "remove", "--topic", "orders", "--allow-principal", "User:alice", "--operation", "read"); !strings.Contains(out, "removed 1 ACL") {
		t.Errorf("acl remove: %s", out)
	}
	if out := tc.mustRun(t, "acl", "remove", "--topic", "payments"); !strings.Contains(out, "removed 2 ACL") {
		t.Errorf("acl remove of a topic: %s", out)
	}
	if out := tc.mustRun(t, "acl", "list"); strings.Count(out, "\n")-1 != 5 {
		t.Errorf("after removals:\n%s", out)
	}
	for _, bad := range [][]string{
		{"acl", "add", "--topic", "t"},
		{"acl", "add", "--allow-principal", "User:a"},
		{"acl", "add", "--allow-principal", "alice", "--topic", "t"},
		{"acl", "add", "--allow-principal", "User:a", "--operation", "Fly", "--topic", "t"},
		{"acl", "add", "--allow-principal", "User:a", "--cluster", "--resource-pattern-type", "prefixed"},
		{"acl", "add", "--allow-principal", "User:a", "--allow-host", "example.com", "--topic", "t"},
		{"acl", "remove", "--allow-principal", "User:a"},
	} {
		if code := tc.exec(bad...); code != exitUsage {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", bad, code, tc.err)
		}
	}
}

func TestQuotaCommands(t *testing.T) {
	t.Parallel()
	ep := startEtcd(t)
	tc := newTestCLI(t, map[string]string{"STREAMHOUSE_ETCD": ep}, "")
	tc.mustRun(t, "quota", "set", "--user", "alice", "--producer-byte-rate", "1MiB", "--consumer-byte-rate", "2MiB")
	tc.mustRun(t, "quota", "set", "--user-default", "--client-id", "", "--consumer-byte-rate", "1000")
	tc.mustRun(t, "quota", "set", "--user", "alice", "--consumer-byte-rate", "3000")
	out := tc.mustRun(t, "quota", "list")
	for _, want := range []string{"user=alice                 1048576             3000", "user=<default>,client-id=  -                   1000"} {
		if !strings.Contains(out, want) {
			t.Errorf("quota list lacks %q:\n%s", want, out)
		}
	}
	tc.mustRun(t, "quota", "delete", "--user", "alice", "--consumer-byte-rate")
	tc.mustRun(t, "quota", "delete", "--user-default", "--client-id", "")
	qs, err := connectEtcd(t, ep).Quotas(context.Background())
	if err != nil || len(qs) != 1 || len(qs[0].Values) != 1 || qs[0].Values[auth.ProducerByteRate] != 1<<20 {
		t.Fatalf("quotas left: %+v, %v", qs, err)
	}
	for _, bad := range [][]string{
		{"quota", "set", "--producer-byte-rate", "1"},
		{"quota", "set", "--user", "a"},
		{"quota", "set", "--user", "a", "--user-default", "--producer-byte-rate", "1"},
		{"quota", "set", "--user", "a", "--producer-byte-rate", "0"},
	} {
		if code := tc.exec(bad...); code != exitUsage {
			t.Errorf("%v: exit %d, stderr %q; want a usage error", bad, code, tc.err)
		}
	}
}

func TestEtcdCredentialFlags(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		user string
		pw   string
		msg  string
	}{
		{args: []string{"--etcd-user", "u", "--etcd-password-file", pwFile}, user: "u", pw: "from-file"},
		{args: []string{"--etcd-user", "u"}, env: map[string]string{"STREAMHOUSE_ETCD_PASSWORD": "from-env"}, user: "u", pw: "from-env"},
		{args: []string{"--etcd-user", "u", "--etcd-password", "x", "--etcd-password-file", pwFile}, msg: "not both"},
		{args: []string{"--etcd-user", "u"}, msg: "go together"},
		{args: []string{"--etcd-password-file", filepath.Join(t.TempDir(), "none")}, msg: "--etcd-password-file"},
		{args: []string{"--etcd-cert", pwFile}, msg: "etcd TLS"},
	} {
		cli := newTestCLI(t, tc.env, "")
		fs := cli.newFlagSet("x", "", "")
		ef := fs.etcdFlags()
		if _, err := fs.parse(append([]string{"--etcd", "e:1"}, tc.args...)); err != nil {
			t.Fatal(err)
		}
		cfg, err := ef.config()
		if tc.msg != "" {
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("%v: %v; want an error with %q", tc.args, err, tc.msg)
			}
			continue
		}
		if err != nil || cfg.Username != tc.user || cfg.Password != tc.pw {
			t.Errorf("%v: %q/%q, %v", tc.args, cfg.Username, cfg.Password, err)
		}
	}
}

// startTLSS3 serves the dev S3 endpoint over TLS with a certificate of ca; it returns its URL.
func startTLSS3(t *testing.T, ca *authtest.CA) string {
	t.Helper()
	srv, err := segstore.NewS3Server(segstore.S3ServerConfig{Dir: t.TempDir(), Bucket: devBucket})
	if err != nil {
		t.Fatal(err)
	}
	cert := ca.Server(t, "s3")
	tc, err := auth.ServerTLS(auth.TLSConfig{CertFile: cert.CertFile, KeyFile: cert.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(tls.NewListener(ln, tc)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return "https://" + ln.Addr().String()
}

// An agent with the etcd CA and a client certificate joins an etcd that requires client
// certificates (and reaches S3 over TLS with a private CA); one without a certificate, or with one
// of another CA, cannot.
func TestAgentJoinsTLSEtcd(t *testing.T) {
	ca, other := authtest.NewCA(t, "cluster-ca"), authtest.NewCA(t, "other-ca")
	etcdCert := ca.Server(t, "etcd")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true,
		ClientTLS: &coord.EmbedTLS{CertFile: etcdCert.CertFile, KeyFile: etcdCert.KeyFile, ClientCAFile: ca.CertFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s3 := startTLSS3(t, ca)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	good := ca.Client(t, pkix.Name{CommonName: "agent-1"})
	bad := other.Client(t, pkix.Name{CommonName: "agent-1"})
	httpAddr := freeAddr(t)
	env := func(cert *authtest.Files) map[string]string {
		m := map[string]string{
			"STREAMHOUSE_ETCD": e.Endpoints()[0], "STREAMHOUSE_ETCD_CACERT": ca.CertFile,
			"STREAMHOUSE_S3_ENDPOINT": s3, "STREAMHOUSE_S3_CACERT": ca.CertFile, "STREAMHOUSE_S3_BUCKET": devBucket,
			"STREAMHOUSE_S3_PATH_STYLE": "true", "STREAMHOUSE_ID": "a1", "STREAMHOUSE_KAFKA_ADDR": "127.0.0.1:0",
			"STREAMHOUSE_INTERNAL_ADDR": "127.0.0.1:0", "STREAMHOUSE_HTTP_ADDR": httpAddr, "STREAMHOUSE_LOG_LEVEL": "warn",
		}
		if cert != nil {
			m["STREAMHOUSE_ETCD_CERT"], m["STREAMHOUSE_ETCD_KEY"] = cert.CertFile, cert.KeyFile
		}
		return m
	}
	for name, cert := range map[string]*authtest.Files{"no client certificate": nil, "another CA's certificate": &bad} {
		c := newTestCLI(t, env(cert), "")
		code := c.exec("agent")
		t.Logf("%s: %s", name, c.err)
		if code != exitFailure || !strings.Contains(c.err.String(), "etcd") {
			t.Errorf("%s: exit %d, stderr %q; want a failure to reach etcd", name, code, c.err)
		}
	}
	a := newTestCLI(t, env(&good), "")
	stderr := &syncBuffer{}
	a.stderr = stderr
	done := make(chan int, 1)
	go func() { done <- a.run([]string{"agent"}) }()
	waitReady(t, "http://"+httpAddr+"/readyz", done, stderr)
	tlsCfg, err := auth.ClientTLS(auth.ClientTLSConfig{CAFile: ca.CertFile, CertFile: good.CertFile, KeyFile: good.KeyFile})
	if err != nil {
		t.Fatal(err)
	}
	cl, err := coord.Connect(ctx, coord.Config{Endpoints: e.Endpoints(), TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if agents, err := cl.Agents(ctx); err != nil || len(agents) != 1 || agents[0].ID != "a1" {
		t.Errorf("registered agents %+v, %v", agents, err)
	}
	a.sig <- syscall.SIGTERM
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("agent exited %d; stderr:\n%s", code, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not stop within 30s of SIGTERM")
	}
}
