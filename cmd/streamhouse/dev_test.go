package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// syncBuffer is an output a running command writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runningDev is "streamhouse dev" running in-process.
type runningDev struct {
	tc       *testCLI
	out, err *syncBuffer
	done     chan int
}

// startDev runs dev on free ports and waits until it prints "ready"; Cleanup stops it.
func startDev(t *testing.T, dataDir string, args ...string) *runningDev {
	t.Helper()
	d := &runningDev{tc: newTestCLI(t, nil, ""), out: &syncBuffer{}, err: &syncBuffer{}, done: make(chan int, 1)}
	d.tc.stdout, d.tc.stderr = d.out, d.err
	args = append([]string{"dev", "--data-dir", dataDir, "--etcd-addr", "127.0.0.1:0", "--s3-addr", "127.0.0.1:0",
		"--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0", "--log-level", "warn"}, args...)
	go func() { d.done <- d.tc.run(args) }()
	t.Cleanup(func() { d.stop(t) })
	deadline := time.After(60 * time.Second)
	for !strings.Contains(d.out.String(), "\nready") {
		select {
		case code := <-d.done:
			d.done <- code
			t.Fatalf("dev exited %d before it was ready; stderr:\n%s", code, d.err)
		case <-deadline:
			t.Fatalf("dev not ready within 60s; stdout:\n%s\nstderr:\n%s", d.out, d.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return d
}

// line returns the value of the first "key: value" line of dev's output.
func (d *runningDev) line(t *testing.T, key string) string {
	t.Helper()
	for _, l := range strings.Split(d.out.String(), "\n") {
		if v, ok := strings.CutPrefix(l, key+": "); ok {
			return v
		}
	}
	t.Fatalf("no %q line in:\n%s", key, d.out)
	return ""
}

// stop sends SIGTERM and checks a clean exit; safe to call twice.
func (d *runningDev) stop(t *testing.T) {
	t.Helper()
	select {
	case d.tc.sig <- syscall.SIGTERM:
	default:
	}
	select {
	case code := <-d.done:
		d.done <- code
		if code != 0 {
			t.Errorf("dev exited %d; stderr:\n%s", code, d.err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("dev did not stop within 30s of SIGTERM")
	}
}

// dev --agents 0 serves etcd and S3 for separate agents, prints where, and keeps its data across a restart.
func TestDevWithoutAgents(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir, "--agents", "0")
	t.Logf("dev output:\n%s", d.out)
	etcd, s3 := d.line(t, "etcd endpoint"), d.line(t, "s3 endpoint")
	if !strings.HasPrefix(etcd, "http://127.0.0.1:") || !strings.HasPrefix(s3, "http://127.0.0.1:") || d.line(t, "s3 bucket") != "streamhouse" {
		t.Errorf("unexpected output:\n%s", d.out)
	}
	if ex := d.line(t, "start an agent with"); !strings.Contains(ex, "streamhouse agent --etcd "+etcd+" --s3-endpoint "+s3+" --s3-bucket streamhouse --s3-path-style") ||
		!strings.HasSuffix(ex, " --internal-addr 127.0.0.1:0 --etcd-max-txn-ops 4096 --etcd-max-request-bytes 4MiB") {
		t.Errorf("example command: %s", ex)
	}
	if strings.Contains(d.out.String(), "kafka address") {
		t.Errorf("kafka address printed without agents:\n%s", d.out)
	}
	checkDevStores(t, etcd, s3)

	// What an agent process sees when its flags point at the wrong place: one line, exit 1, quickly.
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"missing bucket", []string{"--etcd", etcd, "--s3-endpoint", s3, "--s3-bucket", "nosuch", "--s3-path-style"}, "nosuch"},
		{"unreachable s3", []string{"--etcd", etcd, "--s3-endpoint", "http://127.0.0.1:1", "--s3-bucket", "streamhouse"}, "127.0.0.1:1"},
		{"unreachable etcd", []string{"--etcd", "127.0.0.1:1", "--s3-endpoint", s3, "--s3-bucket", "streamhouse"}, "etcd"},
		{"bad s3 endpoint", []string{"--etcd", etcd, "--s3-endpoint", "localhost:9000", "--s3-bucket", "streamhouse"}, "http://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCLI(t, nil, "")
			start := time.Now()
			code := c.exec(append([]string{"agent", "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--internal-addr", "127.0.0.1:0",
				"--log-level", "error"}, tc.args...)...)
			if code == 0 || strings.Count(c.err.String(), "\n") != 1 || !strings.HasPrefix(c.err.String(), "streamhouse: ") ||
				!strings.Contains(c.err.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want one line mentioning %q", code, c.err, tc.msg)
			}
			t.Logf("stderr: %s", c.err)
			if took := time.Since(start); took > 20*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}

	d.stop(t)
	d = startDev(t, dir, "--agents", "0")
	checkDevStores(t, d.line(t, "etcd endpoint"), d.line(t, "s3 endpoint"))
}

// checkDevStores checks that dev's etcd and S3 endpoints answer as an agent would use them.
func checkDevStores(t *testing.T, etcdEndpoint, s3Endpoint string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client, err := coord.Connect(ctx, coord.Config{Endpoints: []string{etcdEndpoint}, MaxRequestBytes: coord.DefaultEmbedMaxRequestBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.Agents(ctx); err != nil {
		t.Errorf("etcd: %v", err)
	}
	// dev's etcd takes Txns of more than etcd's default 128 operations, as its agents send them.
	gets := make([]clientv3.Op, 2*coord.DefaultMaxTxnOps)
	for i := range gets {
		gets[i] = clientv3.OpGet(fmt.Sprintf("/probe/%d", i))
	}
	if _, err := client.Etcd().Txn(ctx).Then(gets...).Commit(); err != nil {
		t.Errorf("etcd: a Txn of %d operations: %v", len(gets), err)
	}
	// It takes requests of more than etcd's default 1.5 MiB too.
	big := strings.Repeat("b", 2<<20)
	if _, err := client.Etcd().Txn(ctx).Then(clientv3.OpPut("/probe/big", big)).Commit(); err != nil {
		t.Errorf("etcd: a request of %d bytes: %v", len(big), err)
	} else if _, err := client.Etcd().Delete(ctx, "/probe/big"); err != nil {
		t.Error(err)
	}
	store, err := segstore.NewS3(ctx, segstore.S3Config{Endpoint: s3Endpoint, Bucket: devBucket, PathStyle: true,
		AccessKeyID: "any", SecretAccessKey: "any"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Check(ctx); err != nil {
		t.Errorf("s3: %v", err)
	}
}

// dev with two agents: the CLI's topic, produce and consume work against either, and everything
// acknowledged survives a restart of dev on the same data directory.
func TestDevRoundTripAndRestart(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir, "--agents", "2", "--flush-interval", "20ms")
	kafka := kafkaAddrs(t, d)
	if len(kafka) != 2 {
		t.Fatalf("want 2 kafka addresses:\n%s", d.out)
	}
	c := newTestCLI(t, map[string]string{"STREAMHOUSE_BROKERS": kafka[1]}, "")
	c.mustRun(t, "topic", "create", "t", "--partitions", "3")
	c.stdin = strings.NewReader("k1:one\nk2:two\nk3:three\n")
	c.mustRun(t, "produce", "t", "--key-separator", ":")
	want := "k1\tone\nk2\ttwo\nk3\tthree\n"
	consumeAll := func(brokers string) string {
		t.Helper()
		out := c.mustRun(t, "consume", "t", "--brokers", brokers, "--from-beginning", "--max", "3", "--timeout", "20s", "--print-keys")
		lines := strings.SplitAfter(out, "\n")
		slices.Sort(lines)
		return strings.Join(lines, "")
	}
	if got := consumeAll(kafka[0]); got != want {
		t.Errorf("consume = %q, want %q", got, want)
	}

	d.stop(t)
	d = startDev(t, dir, "--agents", "1")
	if got := consumeAll(kafkaAddrs(t, d)[0]); got != want {
		t.Errorf("after restart: consume = %q, want %q", got, want)
	}
}

func kafkaAddrs(t *testing.T, d *runningDev) []string {
	t.Helper()
	var addrs []string
	for _, l := range strings.Split(d.out.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "kafka address: "); ok {
			addrs = append(addrs, v)
		}
	}
	if len(addrs) == 0 {
		t.Fatalf("no kafka address in:\n%s", d.out)
	}
	return addrs
}

// "streamhouse agent", configured through the environment, joins dev's etcd and S3, serves Kafka
// clients and stops cleanly on SIGTERM.
func TestAgentCommand(t *testing.T) {
	d := startDev(t, t.TempDir(), "--agents", "0")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	kafka, httpAddr := freeAddr(t), freeAddr(t)
	a := newTestCLI(t, map[string]string{
		"STREAMHOUSE_ETCD": d.line(t, "etcd endpoint"), "STREAMHOUSE_S3_ENDPOINT": d.line(t, "s3 endpoint"),
		"STREAMHOUSE_S3_BUCKET": "streamhouse", "STREAMHOUSE_S3_PATH_STYLE": "true", "STREAMHOUSE_ID": "a1",
		"STREAMHOUSE_KAFKA_ADDR": kafka, "STREAMHOUSE_HTTP_ADDR": httpAddr, "STREAMHOUSE_FLUSH_INTERVAL": "20ms",
		"STREAMHOUSE_LOG_LEVEL": "warn", "STREAMHOUSE_AZ": "",
	}, "")
	stderr := &syncBuffer{}
	a.stderr = stderr
	done := make(chan int, 1)
	go func() { done <- a.run([]string{"agent"}) }()
	waitReady(t, "http://"+httpAddr+"/readyz", done, stderr)

	c := newTestCLI(t, map[string]string{"STREAMHOUSE_BROKERS": kafka}, "x\ny\n")
	c.mustRun(t, "topic", "create", "t", "--partitions", "1")
	c.mustRun(t, "produce", "t")
	if out := c.mustRun(t, "consume", "t", "--from-beginning", "--max", "2", "--timeout", "20s"); out != "x\ny\n" {
		t.Errorf("consume = %q", out)
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

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, url string, done chan int, stderr *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case code := <-done:
			t.Fatalf("exited %d before ready; stderr:\n%s", code, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready within 30s; stderr:\n%s", url, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With --etcd-quota-bytes, a test can fill the embedded etcd: once it raises NOSPACE, produce fails
// and /readyz says why; once space is freed and the alarm disarmed, the agent leads and takes produce
// again by itself.
func TestDevEtcdQuota(t *testing.T) {
	d := startDev(t, t.TempDir(), "--etcd-quota-bytes", "32MiB", "--auto-create-topics")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ep := d.line(t, "etcd endpoint")
	etcd, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer etcd.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddrs(t, d)...), kgo.AllowAutoTopicCreation(),
		kgo.RecordDeliveryTimeout(90*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	produce := func() error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "quota", Value: []byte("v")}).FirstErr()
	}
	if err := produce(); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 1<<20)
	for i := 0; ; i++ {
		if _, err := etcd.Put(ctx, fmt.Sprintf("/filler/%d", i), big); err != nil {
			if !strings.Contains(err.Error(), "database space exceeded") {
				t.Fatalf("filling etcd: %v", err)
			}
			break
		}
	}
	readyz := d.line(t, "http address") + "/readyz"
	// A produce now fails to commit (the client retries it until the alarm is gone); the failure
	// makes the agent look at etcd's health at once.
	retried := make(chan error, 1)
	cl.Produce(ctx, &kgo.Record{Topic: "quota", Value: []byte("during")}, func(_ *kgo.Record, err error) { retried <- err })
	waitStatus(t, readyz, http.StatusServiceUnavailable, "NOSPACE")

	// Free the space: delete the filler, compact, defragment, disarm.
	resp, err := etcd.Delete(ctx, "/filler/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Defragment(ctx, ep); err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, readyz, http.StatusOK, "ready")
	if err := <-retried; err != nil {
		t.Fatalf("the produce retried across the alarm: %v", err)
	}
	if err := produce(); err != nil {
		t.Fatalf("produce once the alarm is disarmed: %v", err)
	}
}

// waitStatus polls url until it answers status with a body containing want (the agent's etcd health
// check runs every 10 s).
func waitStatus(t *testing.T, url string, status int, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
			if resp.StatusCode == status && strings.Contains(string(b), want) {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s did not answer %d %q within 30s; last: %s", url, status, want, last)
}

// topic describe shows each partition's log start and high watermark, and with --etcd what it holds
// in storage: after topic delete-records the log start moves, the high watermark stays, and the
// storage is that of the records kept.
func TestTopicDescribeStorage(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), "--flush-interval", "20ms")
	c := newTestCLI(t, map[string]string{"STREAMHOUSE_BROKERS": kafkaAddrs(t, d)[0]}, "")
	c.mustRun(t, "topic", "create", "t", "--partitions", "2")
	for _, v := range []string{"a", "b", "c"} { // one batch, and so one index entry, each
		c.stdin = strings.NewReader(v + "\n")
		c.mustRun(t, "produce", "t", "--partition", "0")
	}
	if out := c.mustRun(t, "topic", "delete-records", "t", "--partition", "0", "--before", "1"); out != "t/0: log start offset 1\n" {
		t.Errorf("delete-records printed %q", out)
	}
	out := c.mustRun(t, "topic", "describe", "t", "--etcd", d.line(t, "etcd endpoint"))
	t.Logf("topic describe:\n%s", out)
	if !strings.Contains(out, "LOG START  HIGH WATERMARK  ERROR  BYTES  SEGMENTS  TAIL  OBJECTS") {
		t.Errorf("describe's header lacks the offset and storage columns:\n%s", out)
	}
	// PARTITION LEADER ADDRESS RACK EPOCH | LOG START, HIGH WATERMARK, ERROR, BYTES, SEGMENTS, TAIL, OBJECTS
	rows := map[string][]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 12 {
			rows[f[0]] = f[5:]
		}
	}
	// Each produce was acknowledged before the next was sent: three flushes, three objects, three
	// entries, of which the first is wholly below the log start and no longer counted.
	if got := rows["0"]; len(got) != 7 || got[0] != "1" || got[1] != "3" || got[2] != "-" || got[3] == "0" ||
		got[4] != "0" || got[5] != "2" || got[6] != "2" {
		t.Errorf("partition 0: %v, want log start 1, high watermark 3, no error, bytes, no segment, 2 tail entries, 2 objects", got)
	}
	if got := rows["1"]; !slices.Equal(got, []string{"0", "0", "-", "0", "0", "0", "0"}) {
		t.Errorf("partition 1: %v, want an empty partition", got)
	}
}

// topic describe of a compacted topic shows its cleanup policy and, with --etcd, the cleaner's
// progress: once max.compaction.lag.ms has passed, the partition is cleaned to its segments' end.
func TestTopicDescribeCompacted(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), "--flush-interval", "20ms", "--maintenance-interval", "50ms")
	c := newTestCLI(t, map[string]string{"STREAMHOUSE_BROKERS": kafkaAddrs(t, d)[0]}, "")
	c.mustRun(t, "topic", "create", "kv", "--config", "cleanup.policy=compact", "--config", "max.compaction.lag.ms=400")
	c.stdin = strings.NewReader("a:1\nb:1\na:2\n")
	c.mustRun(t, "produce", "kv", "--key-separator", ":")
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := c.mustRun(t, "topic", "describe", "kv", "--etcd", d.line(t, "etcd endpoint"))
		if !strings.Contains(out, "cleanup.policy=compact") || !strings.Contains(out, "CLEANED TO  TOMBSTONES") {
			t.Fatalf("describe lacks the policy or the cleaner's columns:\n%s", out)
		}
		for _, l := range strings.Split(out, "\n") {
			// PARTITION ... BYTES SEGMENTS TAIL OBJECTS CLEANED-TO TOMBSTONES
			if f := strings.Fields(l); len(f) == 14 && f[0] == "0" && f[13] == "0" && f[12] == "3" && f[10] == "0" {
				t.Logf("topic describe:\n%s", out)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("partition not cleaned to offset 3 (its whole log, no tail left):\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
