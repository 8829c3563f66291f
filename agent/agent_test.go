package agent

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// One embedded etcd serves the whole test binary; each test cluster works under its own prefix.
var sharedEtcd []string

func TestMain(m *testing.M) { os.Exit(runTests(m)) }

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "agent-test-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer e.Close()
	sharedEtcd = e.Endpoints()
	return m.Run()
}

var prefixSeq atomic.Int64

// testCluster is an etcd prefix and an object store shared by the agents of one test.
type testCluster struct {
	t      testing.TB
	prefix string
	store  *segstore.Faulty
	// wrapStore, when set, is what each agent of the cluster sees of store (a latency profile).
	wrapStore func(id string, s segstore.Store) segstore.Store
}

func newTestCluster(t testing.TB) *testCluster {
	t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9_]+`).ReplaceAllString(t.Name(), "_")
	return &testCluster{
		t:      t,
		prefix: fmt.Sprintf("/t/%s-%d/", name, prefixSeq.Add(1)),
		store:  segstore.NewFaulty(segstore.NewMemory()),
	}
}

func testLogger(t testing.TB) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{t}})
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// client connects to the cluster's etcd prefix.
func (tc *testCluster) client() *coord.Client {
	tc.t.Helper()
	c, err := coord.Connect(testCtx(tc.t), coord.Config{Endpoints: sharedEtcd, Prefix: tc.prefix, Logger: testLogger(tc.t)})
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { c.Close() })
	return c
}

// agent starts an agent of the cluster; opts adjust its config before New.
func (tc *testCluster) agent(id string, opts ...func(*Config)) *Agent {
	tc.t.Helper()
	a := tc.newAgent(id, opts...)
	if err := a.Start(testCtx(tc.t)); err != nil {
		tc.t.Fatal(err)
	}
	return a
}

// testConfig is the configuration of test agent id: free ports, a short flush interval and lease, logs
// to t, a registry of its own, then opts.
func testConfig(t testing.TB, id string, opts ...func(*Config)) Config {
	cfg := NewConfig()
	cfg.ID = id
	cfg.KafkaAddr, cfg.HTTPAddr, cfg.InternalAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.FlushInterval, cfg.LeaseTTL = 5*time.Millisecond, 2*time.Second
	// Test batches carry timestamps of 1970 (valueBatch): the default retention would expire them.
	cfg.DefaultRetention = -1
	cfg.Logger = testLogger(t)
	reg := prometheus.NewRegistry()
	cfg.Registerer, cfg.Gatherer = reg, reg
	for _, o := range opts {
		o(&cfg)
	}
	return cfg
}

func (tc *testCluster) newAgent(id string, opts ...func(*Config)) *Agent {
	tc.t.Helper()
	cfg := testConfig(tc.t, id, opts...)
	var store segstore.Store = tc.store
	if tc.wrapStore != nil {
		store = tc.wrapStore(id, store)
	}
	a, err := New(cfg, tc.client(), store)
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.t.Cleanup(func() { a.Close() })
	return a
}

// kgoClient is a franz-go client of the given agents.
func kgoClient(t testing.TB, opts []kgo.Opt, agents ...*Agent) *kgo.Client {
	t.Helper()
	var seeds []string
	for _, a := range agents {
		seeds = append(seeds, a.KafkaAddr())
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(50 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic through the Kafka protocol and waits until every partition has a leader.
func createTopic(t testing.TB, cl *kgo.Client, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	resp, err := adm.CreateTopic(ctx, partitions, 1, configs, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	for {
		md, err := adm.Metadata(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		ready := len(md.Topics[name].Partitions) == int(partitions)
		for _, p := range md.Topics[name].Partitions {
			ready = ready && p.Leader >= 0 && p.Err == nil
		}
		if ready {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("topic %s: partitions never all got leaders", name)
		case <-time.After(10 * time.Millisecond): // polling the broker, as a client would
		}
	}
}
