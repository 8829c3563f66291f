package main

import (
	"context"
	"encoding/json"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// startEtcd runs an embedded etcd on free ports until the test ends.
func startEtcd(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0", UnsafeNoFsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Endpoints()[0]
}

// clusterFixture is one registered agent leading partition 1 of a two-partition topic, with 42
// records committed there; partition 0 has no leader.
type clusterFixture struct {
	endpoint string
	epoch    int64
}

func newClusterFixture(t *testing.T) clusterFixture {
	t.Helper()
	ep := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := coord.Connect(ctx, coord.Config{Endpoints: []string{ep}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	s, err := cl.Register(ctx, coord.AgentInfo{ID: "agent-1", Addr: "127.0.0.1:9092", AZ: "az-a", Group: "default"}, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	top, err := cl.CreateTopic(ctx, coord.Topic{Name: "orders", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	ld, err := s.Acquire(ctx, top.TP(1), coord.EpochHint{})
	if err != nil {
		t.Fatal(err)
	}
	epoch := ld.Rev // fencing; clients and the status see ld.Epoch
	entry := coord.IndexEntry{BaseOffset: 0, LastOffset: 41, Extents: []coord.Extent{{Object: "seg/x", Pos: 32, Len: 100}}}
	if err := s.Commit(ctx, []coord.Commit{{TP: top.TP(1), Epoch: epoch, Entry: entry}})[0]; err != nil {
		t.Fatal(err)
	}
	return clusterFixture{endpoint: ep, epoch: int64(ld.Epoch)}
}

func TestClusterStatusJSON(t *testing.T) {
	f := newClusterFixture(t)
	out := newTestCLI(t, nil, "").mustRun(t, "cluster", "status", "--etcd", f.endpoint, "--json")

	var got coord.ClusterStatus
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(got.Agents) == 1 {
		if ttl := got.Agents[0].TTLSeconds; ttl <= 0 || ttl > 30 {
			t.Errorf("ttl_seconds = %d, want in (0, 30]", ttl)
		}
		got.Agents[0].TTLSeconds = 0
	}
	leader := "agent-1"
	want := coord.ClusterStatus{
		Agents: []coord.AgentStatus{{ID: "agent-1", AZ: "az-a", Group: "default", Addr: "127.0.0.1:9092", PartitionsLed: 1}},
		Partitions: []coord.PartitionStatus{
			{Topic: "orders", Partition: 0},
			{Topic: "orders", Partition: 1, Leader: &leader, Epoch: f.epoch, NextOffset: 42, Bytes: 100, Tail: 1, Objects: 1},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status = %+v,\nwant %+v", got, want)
	}
	// The shape is the contract: a partition without a leader says so with null.
	var raw struct {
		Partitions []map[string]any `json:"partitions"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	if v, ok := raw.Partitions[0]["leader"]; !ok || v != nil {
		t.Errorf("partition 0 leader = %v (present %v), want null", v, ok)
	}
}

func TestClusterStatusTable(t *testing.T) {
	f := newClusterFixture(t)
	// The endpoint from the agent's variable, as an agent.env would set it.
	out := newTestCLI(t, map[string]string{"STREAMHOUSE_ETCD": "http://" + f.endpoint}, "").mustRun(t, "cluster", "status")
	var rows []string
	for _, l := range strings.Split(out, "\n") {
		rows = append(rows, strings.Join(strings.Fields(l), " "))
	}
	agent := rows[1]
	if !strings.HasPrefix(agent, "agent-1 az-a default 127.0.0.1:9092 ") || !strings.HasSuffix(agent, "s 1") {
		t.Errorf("agent row %q", agent)
	}
	for _, want := range []string{
		"ID AZ GROUP ADDR TTL PARTITIONS",
		"TOPIC PARTITION LEADER EPOCH LOG-START NEXT-OFFSET BYTES SEGMENTS TAIL OBJECTS",
		"orders 0 - 0 0 0 0 0 0 0",
		"orders 1 agent-1 " + strconv.FormatInt(f.epoch, 10) + " 0 42 100 0 1 1",
	} {
		if !slices.Contains(rows, want) {
			t.Errorf("no row %q in:\n%s", want, out)
		}
	}
	// Columns line up: a row's cell starts where its header does.
	lines := strings.Split(out, "\n")
	if strings.Index(lines[0], "ADDR") != strings.Index(lines[1], "127.0.0.1") ||
		strings.Index(lines[3], "LEADER") != strings.Index(lines[5], "agent-1") {
		t.Errorf("tables not aligned:\n%s", out)
	}

	// Another prefix is another cluster: empty here.
	out = newTestCLI(t, nil, "").mustRun(t, "cluster", "status", "--etcd", f.endpoint, "--etcd-prefix", "/other", "--json")
	if strings.Join(strings.Fields(out), "") != `{"agents":[],"partitions":[]}` {
		t.Errorf("status under another prefix = %s", out)
	}
}

func TestClusterStatusErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String() // nothing listens there once closed
	l.Close()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		msg  string
	}{
		{"no subcommand", []string{"cluster"}, nil, 2, "want a subcommand: status"},
		{"unknown subcommand", []string{"cluster", "heal"}, nil, 2, `unknown subcommand "heal"`},
		{"blank etcd", []string{"cluster", "status", "--etcd", ","}, nil, 2, "no endpoints"},
		{"argument", []string{"cluster", "status", "--etcd", closed, "x"}, nil, 2, "want 0 argument(s)"},
		{"unreachable", []string{"cluster", "status", "--etcd", closed}, nil, 1, "etcd: cannot reach " + closed + " within 3s"},
		{"unreachable from env", []string{"cluster", "status", "--json"}, map[string]string{"STREAMHOUSE_ETCD": closed}, 1, "cannot reach " + closed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // the unreachable cases each wait out the dial timeout
			c := newTestCLI(t, tc.env, "")
			start := time.Now()
			if code := c.run(tc.args); code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if d := time.Since(start); d > etcdDialTimeout+2*time.Second {
				t.Errorf("took %v", d)
			}
			stderr := c.err.String()
			if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "streamhouse: ") || !strings.Contains(stderr, tc.msg) {
				t.Errorf("stderr = %q, want one line 'streamhouse: ...%s...'", stderr, tc.msg)
			}
			if c.out.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", c.out)
			}
		})
	}
}

func TestClusterHelp(t *testing.T) {
	for args, want := range map[string][]string{
		"--help":                {"cluster", "partition leaders"},
		"cluster --help":        {"status"},
		"cluster status --help": {"--etcd endpoints", "[$STREAMHOUSE_ETCD]", "--etcd-prefix prefix", "[$STREAMHOUSE_ETCD_PREFIX]", "--json"},
	} {
		out := newTestCLI(t, nil, "").mustRun(t, strings.Fields(args)...)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: no %q in:\n%s", args, w, out)
			}
		}
	}
}
