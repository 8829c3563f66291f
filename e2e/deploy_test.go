package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	xdgscram "github.com/xdg-go/scram"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/streamhouse/streamhouse/auth/authtest"
)

// The passwords of the guide's users, and of the two this test adds: "nobody" has no ACL, and
// "quota-app" may write the orders- topics under a produce quota.
const (
	adminPassword  = "admin-secret"
	appPassword    = "orders-secret"
	nobodyPassword = "nobody-secret"
	quotaPassword  = "quota-secret"
)

// deployNodes are the guide's three machines; on loopback they differ by port only.
var deployNodes = []string{"node-1", "node-2", "node-3"}

// deployPKI is step 1 of docs/DEPLOY.md: one CA and, under the guide's file names, every node's etcd
// member, etcd client and Kafka certificates, and the operator's etcd client certificate. The guide
// makes them with openssl; here crypto/x509 signs the same subjects for 127.0.0.1 (the names the
// machines would have).
type deployPKI struct {
	dir string // pki/: ca.pem, node-1.pem, node-1-key.pem, agent-node-1.pem, kafka-node-1.pem, admin.pem, …
	ca  *x509.CertPool
}

func newDeployPKI(t *testing.T) *deployPKI {
	t.Helper()
	ca := authtest.NewCA(t, "streamhouse-ca")
	p := &deployPKI{dir: filepath.Join(t.TempDir(), "pki"), ca: x509.NewCertPool()}
	if err := os.Mkdir(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	link := func(name string, f authtest.Files) {
		for src, dst := range map[string]string{f.CertFile: name + ".pem", f.KeyFile: name + "-key.pem"} {
			if err := os.Link(src, filepath.Join(p.dir, dst)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Link(ca.CertFile, filepath.Join(p.dir, "ca.pem")); err != nil {
		t.Fatal(err)
	}
	for _, n := range deployNodes {
		link(n, ca.Server(t, n))                   // etcd member: server and peer
		link("agent-"+n, ca.Server(t, "agent-"+n)) // the agent's client certificate for etcd
		link("kafka-"+n, ca.Server(t, n))          // the agent's Kafka and HTTP certificate
	}
	link("admin", ca.Client(t, pkix.Name{CommonName: "admin"}))
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	p.ca.AppendCertsFromPEM(pem)
	return p
}

func (p *deployPKI) file(name string) string { return filepath.Join(p.dir, name) }

// tls is a client's TLS configuration: it trusts the CA, shows no certificate.
func (p *deployPKI) tls() *tls.Config {
	return &tls.Config{RootCAs: p.ca, MinVersion: tls.VersionTLS12}
}

// startDeployEtcd is step 2: three etcd members, each from deploy/etcd.yaml with its name, its URLs
// and its certificate files changed as the guide says, and nothing else. They run in the test's
// process (etcd's embed package reads the same file etcd --config-file does). It returns the
// client endpoints, comma-separated.
func startDeployEtcd(t *testing.T, p *deployPKI) string {
	t.Helper()
	tmpl, err := os.ReadFile("../deploy/etcd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	clients, peers := make([]string, len(deployNodes)), make([]string, len(deployNodes))
	var cluster []string
	for i, n := range deployNodes {
		clients[i], peers[i] = "https://"+closedAddr(t), "https://"+closedAddr(t)
		cluster = append(cluster, n+"="+peers[i])
	}
	dir := t.TempDir()
	members := make([]*embed.Etcd, len(deployNodes))
	errs := make([]error, len(deployNodes))
	var wg sync.WaitGroup
	for i, n := range deployNodes {
		set := map[string]string{
			"name": n, "data-dir": filepath.Join(dir, n),
			"listen-client-urls": clients[i], "advertise-client-urls": clients[i],
			"listen-peer-urls": peers[i], "initial-advertise-peer-urls": peers[i],
			"initial-cluster": strings.Join(cluster, ","),
			"cert-file":       p.file(n + ".pem"), "key-file": p.file(n + "-key.pem"), "trusted-ca-file": p.file("ca.pem"),
		}
		path := filepath.Join(dir, n+".yaml")
		if err := os.WriteFile(path, []byte(editYAML(t, string(tmpl), set)), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := embed.ConfigFromFile(path)
		if err != nil {
			t.Fatalf("deploy/etcd.yaml for %s: %v", n, err)
		}
		if !cfg.ClientTLSInfo.ClientCertAuth || !cfg.PeerTLSInfo.ClientCertAuth {
			t.Fatalf("deploy/etcd.yaml: client-cert-auth is not on for clients and peers")
		}
		// What a test changes: no fsync, no log, a quick election on loopback.
		cfg.UnsafeNoFsync = true
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cfg.TickMs, cfg.ElectionMs = 50, 500
		wg.Add(1)
		go func() {
			defer wg.Done()
			members[i], errs[i] = embed.StartEtcd(cfg)
		}()
	}
	wg.Wait()
	for i, m := range members {
		if errs[i] != nil {
			t.Fatalf("etcd %s: %v", deployNodes[i], errs[i])
		}
		t.Cleanup(m.Close)
	}
	for i, m := range members {
		select {
		case <-m.Server.ReadyNotify():
		case err := <-m.Err():
			t.Fatalf("etcd %s: %v", deployNodes[i], err)
		case <-time.After(startTimeout):
			t.Fatalf("etcd %s not ready within %v", deployNodes[i], startTimeout)
		}
	}
	return strings.Join(clients, ",")
}

// editYAML sets the values of the keys in set (at any indentation) in a YAML file of "key: value"
// lines; every key of set must be in the file.
func editYAML(t *testing.T, text string, set map[string]string) string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for _, l := range strings.Split(text, "\n") {
		trimmed := strings.TrimLeft(l, " ")
		if k, _, ok := strings.Cut(trimmed, ":"); ok && !strings.HasPrefix(trimmed, "#") {
			if v, ok := set[k]; ok {
				l = l[:len(l)-len(trimmed)] + k + ": " + v
				seen[k] = true
			}
		}
		out = append(out, l)
	}
	for k := range set {
		if !seen[k] {
			t.Fatalf("deploy/etcd.yaml has no %s", k)
		}
	}
	return strings.Join(out, "\n")
}

// deployAgentEnv is step 4's /etc/streamhouse/agent.env of node n: deploy/agent-secure.env with the
// values the guide says to change (the node's id, addresses and certificate names, the S3 settings)
// and the ports of a loopback cluster. more are further VAR=value settings.
func deployAgentEnv(t *testing.T, p *deployPKI, n, etcd string, d *dev, kafkaAddr string, more ...string) []string {
	t.Helper()
	f, err := os.Open("../deploy/agent-secure.env")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	set := map[string]string{
		"STREAMHOUSE_ETCD": etcd, "STREAMHOUSE_ETCD_CACERT": p.file("ca.pem"),
		"STREAMHOUSE_ETCD_CERT": p.file("agent-" + n + ".pem"), "STREAMHOUSE_ETCD_KEY": p.file("agent-" + n + "-key.pem"),
		"STREAMHOUSE_S3_BUCKET": d.bucket, "STREAMHOUSE_S3_ENDPOINT": d.s3,
		"STREAMHOUSE_ID":                   n,
		"STREAMHOUSE_LISTENERS":            "SASL_SSL://" + kafkaAddr,
		"STREAMHOUSE_ADVERTISED_LISTENERS": "SASL_SSL://" + kafkaAddr,
		"STREAMHOUSE_SSL_CERT_FILE":        p.file("kafka-" + n + ".pem"), "STREAMHOUSE_SSL_KEY_FILE": p.file("kafka-" + n + "-key.pem"),
		"STREAMHOUSE_INTERNAL_ADDR": "127.0.0.1:0", "STREAMHOUSE_HTTP_ADDR": "127.0.0.1:0",
		"STREAMHOUSE_INTERNAL_SSL_CA_FILE": p.file("ca.pem"),
	}
	seen := map[string]bool{}
	var env []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("deploy/agent-secure.env: %q is not VAR=value", l)
		}
		if nv, ok := set[k]; ok {
			v, seen[k] = nv, true
		}
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for k := range set {
		if !seen[k] {
			t.Fatalf("deploy/agent-secure.env has no %s", k)
		}
	}
	// dev's S3 (the guide's "S3-compatible store"): its credentials, and path-style addressing.
	env = append(env, "AWS_ACCESS_KEY_ID=streamhouse", "AWS_SECRET_ACCESS_KEY=streamhouse", "STREAMHOUSE_S3_PATH_STYLE=true")
	return append(env, more...)
}

// deployAgent is a running agent of the guide.
type deployAgent struct {
	*proc
	kafka, internal string
}

// startDeployAgent starts "streamhouse agent" with env only, as the unit does, and waits until its
// HTTPS /readyz answers 200.
func startDeployAgent(t *testing.T, p *deployPKI, name string, env []string) *deployAgent {
	t.Helper()
	a := &deployAgent{proc: startProc(t, name, env, "agent")}
	started := a.waitLog(t, "agent started", startTimeout)
	kafka, _ := started["kafka"].(string)
	httpAddr, _ := started["http"].(string)
	if kafka == "" || httpAddr == "" {
		t.Fatalf("%s: no kafka or http address in its start-up log line %v", name, started)
	}
	a.kafka = kafka
	a.internal, _ = started["internal"].(string)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: p.tls()}, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+httpAddr+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return a
			}
		}
		select {
		case <-tick.C:
		case <-a.done:
			t.Fatalf("%s exited (%v) before https://%s/readyz answered 200", name, a.cmd.ProcessState, httpAddr)
		case <-ctx.Done():
			t.Fatalf("https://%s/readyz did not answer 200 within %v", httpAddr, startTimeout)
		}
	}
}

// TestDeployGuide follows docs/DEPLOY.md on loopback: three etcd members from deploy/etcd.yaml with
// TLS and client certificates, users and ACLs with the streamhouse CLI as step 3 gives them, three
// agents from deploy/agent-secure.env (SASL_SSL only, ACLs on, HTTPS), then franz-go, kcat and
// sarama as clients over SASL_SSL with SCRAM-SHA-512. It checks the refusals the guide promises: a
// wrong password, a user without ACLs, a plaintext client on the TLS port, a client not trusting the
// agents' CA, a certificate of another CA on the agents' own listener, an agent without its etcd
// client certificate; and that a produce quota holds a client to its rate.
func TestDeployGuide(t *testing.T) {
	t.Parallel()
	needBinary(t)
	kcat := needKcat(t)
	p := newDeployPKI(t)
	etcd := startDeployEtcd(t, p)
	d := startDev(t, t.TempDir(), "--agents", "0") // the S3 store only; its etcd is not used

	// Step 3: the users and the ACLs, with the operator's etcd certificate.
	E := []string{"--etcd", strings.Split(etcd, ",")[0], "--etcd-cacert", p.file("ca.pem"),
		"--etcd-cert", p.file("admin.pem"), "--etcd-key", p.file("admin-key.pem")}
	shE := func(stdin string, args ...string) { mustRun(t, stdin, bin, append(args, E...)...) }
	shE(adminPassword+"\n", "user", "add", "admin", "--password-stdin")
	shE(appPassword+"\n", "user", "add", "orders-app", "--password-stdin")
	shE("", "acl", "add", "--allow-principal", "User:orders-app", "--operation", "Write", "--operation", "Read",
		"--topic", "orders-", "--resource-pattern-type", "prefixed")
	shE("", "acl", "add", "--allow-principal", "User:orders-app", "--operation", "Read", "--group", "orders-",
		"--resource-pattern-type", "prefixed")
	shE(nobodyPassword+"\n", "user", "add", "nobody", "--password-stdin")
	shE(quotaPassword+"\n", "user", "add", "quota-app", "--password-stdin")
	shE("", "acl", "add", "--allow-principal", "User:quota-app", "--operation", "Write",
		"--topic", "orders-", "--resource-pattern-type", "prefixed")
	shE("", "quota", "set", "--user", "quota-app", "--producer-byte-rate", fmt.Sprint(quotaRate))

	// Step 4: the agents. The quota windows are shorter than Kafka's 11 s so that a test sees the
	// rate settle within seconds.
	quotaWindows := []string{"STREAMHOUSE_QUOTA_WINDOW_NUM=" + fmt.Sprint(quotaWindowNum), "STREAMHOUSE_QUOTA_WINDOW_SIZE=" + quotaWindowSize.String()}
	var brokers, internals []string
	for _, n := range deployNodes {
		a := startDeployAgent(t, p, n, deployAgentEnv(t, p, n, etcd, d, closedAddr(t), quotaWindows...))
		brokers, internals = append(brokers, a.kafka), append(internals, a.internal)
	}

	// An agent without its etcd client certificate is refused by etcd and says so.
	t.Run("etcd-without-client-certificate", func(t *testing.T) {
		t.Parallel()
		env := deployAgentEnv(t, p, "node-4", etcd, d, closedAddr(t))
		env = withoutVars(env, "STREAMHOUSE_ETCD_CERT", "STREAMHOUSE_ETCD_KEY")
		r := runCmd(t, startTimeout, "", env, bin, "agent")
		if r.code == 0 {
			t.Fatalf("an agent without an etcd client certificate exited 0; stderr:\n%s", r.stderr)
		}
		if !strings.Contains(r.stderr, "etcd") || !strings.Contains(r.stderr, "certificate required") {
			t.Errorf("an agent without an etcd client certificate exited %d without saying etcd wants one; stderr:\n%s", r.code, r.stderr)
		}
		t.Logf("refused after %v: %s", r.took.Round(time.Millisecond), lastLine(r.stderr))
	})

	// Step 5: the clients. admin creates the topic; orders-app writes and reads it.
	const topic, partitions = "orders-events", 3
	admin := deployClient(t, p, brokers, "admin", adminPassword)
	if _, err := kadm.NewClient(admin).CreateTopic(context.Background(), partitions, -1, nil, topic); err != nil {
		t.Fatalf("admin creates %s: %v", topic, err)
	}
	app := deployClient(t, p, brokers, "orders-app", appPassword)
	want := map[string]bool{}
	for i := range 30 {
		v := fmt.Sprintf("franz-%d", i)
		want[v] = true
		if err := app.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("orders-app produces with franz-go: %v", err)
		}
	}
	kcatConf := []string{"-b", strings.Join(brokers, ","), "-X", "security.protocol=sasl_ssl", "-X", "sasl.mechanism=SCRAM-SHA-512",
		"-X", "sasl.username=orders-app", "-X", "sasl.password=" + appPassword, "-X", "ssl.ca.location=" + p.file("ca.pem")}
	var kcatIn strings.Builder
	for i := range 30 {
		v := fmt.Sprintf("kcat-%d", i)
		want[v] = true
		fmt.Fprintln(&kcatIn, v)
	}
	mustRun(t, kcatIn.String(), kcat, append(kcatConf, "-P", "-t", topic)...)
	for i := range 30 {
		want[fmt.Sprintf("sarama-%d", i)] = true
	}
	saramaProduce(t, p, brokers, topic, 30)

	// Every record back, through each client.
	checkAll := func(who string, got []string) {
		t.Helper()
		seen := map[string]bool{}
		for _, v := range got {
			seen[v] = true
		}
		for v := range want {
			if !seen[v] {
				t.Errorf("%s did not read %s (read %d records)", who, v, len(got))
				return
			}
		}
	}
	out := mustRun(t, "", kcat, append(kcatConf, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n")...)
	checkAll("kcat", strings.Fields(out))
	checkAll("sarama", saramaDeployConsume(t, p, brokers, topic, partitions, len(want)))
	checkAll("franz-go", kgoConsume(t, p, brokers, topic, len(want)))

	t.Run("wrong-password", func(t *testing.T) {
		t.Parallel()
		cl := deployClient(t, p, brokers, "orders-app", "not-the-password")
		_, err := kadm.NewClient(cl).ListTopics(context.Background())
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Fatalf("a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
		}
	})
	t.Run("plaintext-to-tls-port", func(t *testing.T) {
		t.Parallel()
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DialTimeout(2*time.Second), kgo.RequestRetries(0),
			kgo.RetryTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		topics, err := kadm.NewClient(cl).ListTopics(ctx)
		if err == nil {
			t.Fatalf("a plaintext client on the SASL_SSL port listed topics: %v", topics.Names())
		}
	})
	t.Run("untrusted-certificates", func(t *testing.T) {
		t.Parallel()
		other := authtest.NewCA(t, "another-ca")
		// A client that does not trust the agents' CA stops at the handshake: it learns nothing.
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(other.CertFile)
		if err != nil {
			t.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
			kgo.SASL(scram.Auth{User: "orders-app", Pass: appPassword}.AsSha512Mechanism()),
			kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if topics, err := kadm.NewClient(cl).ListTopics(ctx); err == nil {
			t.Errorf("a client not trusting the agents' CA listed topics %v", topics.Names())
		}
		// The agents' own listener takes only certificates of the CA: one of another CA is refused.
		files := other.Client(t, pkix.Name{CommonName: "node-1"})
		pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, addr := range internals {
			if addr == "" {
				t.Fatal("an agent's start-up line names no internal address")
			}
			c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: p.ca, Certificates: []tls.Certificate{pair}})
			if err == nil {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Read(make([]byte, 1)) // TLS 1.3: the server's refusal arrives after the client's handshake
				c.Close()
			}
			if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Errorf("the internal listener %s with a certificate of another CA: %v, want a TLS refusal", addr, err)
			}
		}
	})
	t.Run("user-without-acls", func(t *testing.T) {
		t.Parallel()
		cl := deployClient(t, p, brokers, "nobody", nobodyPassword)
		adm := kadm.NewClient(cl)
		topics, err := adm.ListTopics(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(topics) != 0 {
			t.Errorf("nobody sees topics %v, want none", topics.Names())
		}
		err = cl.ProduceSync(context.Background(), &kgo.Record{Topic: topic, Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("nobody produces: %v, want TOPIC_AUTHORIZATION_FAILED", err)
		}
		resps, err := adm.DeleteTopics(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		if err := resps[topic].Err; !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("nobody deletes %s: %v, want TOPIC_AUTHORIZATION_FAILED", topic, err)
		}
	})
	t.Run("produce-quota", func(t *testing.T) {
		t.Parallel()
		checkProduceQuota(t, p, brokers)
	})
}

// The produce quota of quota-app, and the agents' quota windows (--quota-window-num, -size).
const (
	quotaRate       = 512 << 10
	quotaWindowNum  = 8
	quotaWindowSize = 250 * time.Millisecond
	// quotaWarmup is how long the client produces before the measurement begins: the first full
	// windows let a burst through, as Kafka's quotas do. quotaMeasure is how long it is measured.
	quotaWarmup  = 2 * time.Second
	quotaMeasure = 6 * time.Second
)

// checkProduceQuota produces as fast as franz-go goes as quota-app, to a topic of one partition
// (one agent measures it), and checks the acknowledged bytes per second over quotaMeasure, after
// quotaWarmup, are within 10% of the quota. Requests are kept small (a batch of a few records):
// a request near the quota's whole window of bytes is forgotten with its sample, as in Kafka.
func checkProduceQuota(t *testing.T, p *deployPKI, brokers []string) {
	const topic, size = "orders-quota", 4 << 10
	admin := deployClient(t, p, brokers, "admin", adminPassword)
	if _, err := kadm.NewClient(admin).CreateTopic(context.Background(), 1, -1, nil, topic); err != nil {
		t.Fatal(err)
	}
	cl := deployClient(t, p, brokers, "quota-app", quotaPassword, kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.ProducerLinger(0), kgo.ProducerBatchMaxBytes(16<<10), kgo.MaxBufferedRecords(16))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu                sync.Mutex
		start             = time.Now()
		measured, failed  int64
		measureFrom, last time.Time
	)
	value := make([]byte, size)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cl.Produce(ctx, &kgo.Record{Topic: topic, Value: value}, func(r *kgo.Record, err error) {
				now := time.Now()
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err != nil:
					failed++
				case now.Sub(start) < quotaWarmup:
				case measureFrom.IsZero():
					measureFrom = now // bytes acknowledged from here on are counted
				case now.Sub(measureFrom) <= quotaMeasure:
					measured += int64(len(r.Value))
					last = now
				default:
					cancel()
				}
			})
		}
	}()
	<-done
	cl.Flush(context.Background())
	mu.Lock()
	defer mu.Unlock()
	if failed > 0 && measured == 0 {
		t.Fatalf("quota-app: %d records failed, none measured", failed)
	}
	span := last.Sub(measureFrom)
	rate := float64(measured) / span.Seconds()
	t.Logf("quota %d B/s: %d bytes acknowledged in %v: %.0f B/s (%.1f%% of the quota)", quotaRate, measured,
		span.Round(time.Millisecond), rate, 100*rate/quotaRate)
	if rate < 0.9*quotaRate || rate > 1.1*quotaRate {
		t.Errorf("a client with a produce quota of %d B/s was acknowledged %.0f B/s, want within 10%%", quotaRate, rate)
	}
}

// deployClient is a franz-go client of the guide's step 5: TLS trusting the CA, SCRAM-SHA-512.
func deployClient(t *testing.T, p *deployPKI, brokers []string, user, pass string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(brokers...), kgo.DialTLSConfig(p.tls()),
		kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// kgoConsume reads n records of topic from the start with franz-go as orders-app.
func kgoConsume(t *testing.T, p *deployPKI, brokers []string, topic string, n int) []string {
	t.Helper()
	cl := deployClient(t, p, brokers, "orders-app", appPassword, kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	var got []string
	for len(got) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("franz-go read %d of %d records within %v", len(got), n, cliTimeout)
		}
		if err := fs.Err(); err != nil {
			t.Fatalf("franz-go consumes as orders-app: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	return got
}

// saramaSCRAM is sarama's SCRAM client over xdg-go/scram, as sarama's own example has it.
type saramaSCRAM struct{ conv *xdgscram.ClientConversation }

func (s *saramaSCRAM) Begin(user, pass, authzID string) error {
	c, err := xdgscram.SHA512.NewClient(user, pass, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}
func (s *saramaSCRAM) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *saramaSCRAM) Done() bool                            { return s.conv.Done() }

// deploySarama is sarama's configuration of step 5: SASL_SSL with SCRAM-SHA-512 as orders-app.
func deploySarama(p *deployPKI) *sarama.Config {
	cfg := saramaConfig("none")
	cfg.Net.TLS.Enable, cfg.Net.TLS.Config = true, p.tls()
	cfg.Net.SASL.Enable, cfg.Net.SASL.Mechanism = true, sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = "orders-app", appPassword
	cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &saramaSCRAM{} }
	return cfg
}

// saramaProduce writes sarama-0 … sarama-(n-1) with a SyncProducer.
func saramaProduce(t *testing.T, p *deployPKI, brokers []string, topic string, n int) {
	t.Helper()
	pr, err := sarama.NewSyncProducer(brokers, deploySarama(p))
	if err != nil {
		t.Fatalf("sarama producer as orders-app: %v", err)
	}
	defer closeOrFail(t, "sarama producer", pr.Close)
	for i := range n {
		if _, _, err := pr.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("sarama-%d", i))}); err != nil {
			t.Fatalf("sarama produces as orders-app: %v", err)
		}
	}
}

// saramaDeployConsume reads every partition of topic from the oldest offset until n records are read.
func saramaDeployConsume(t *testing.T, p *deployPKI, brokers []string, topic string, partitions, n int) []string {
	t.Helper()
	c, err := sarama.NewConsumer(brokers, deploySarama(p))
	if err != nil {
		t.Fatalf("sarama consumer as orders-app: %v", err)
	}
	defer closeOrFail(t, "sarama consumer", c.Close)
	msgs := make(chan string, 2*n)
	for part := range partitions {
		pc, err := c.ConsumePartition(topic, int32(part), sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("sarama consumes %s/%d: %v", topic, part, err)
		}
		defer pc.AsyncClose()
		go func() {
			for m := range pc.Messages() {
				msgs <- string(m.Value)
			}
		}()
	}
	var got []string
	timeout := time.After(cliTimeout)
	for len(got) < n {
		select {
		case v := <-msgs:
			got = append(got, v)
		case <-timeout:
			t.Fatalf("sarama read %d of %d records within %v", len(got), n, cliTimeout)
		}
	}
	return got
}

// withoutVars drops the settings of names from env.
func withoutVars(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
