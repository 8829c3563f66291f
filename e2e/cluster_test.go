package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Time limits of the multi-agent tests. Like the harness's, they bound waits that normally end much
// sooner; a test that asserts a tighter bound (failover within the TTL + 2 s) does so separately.
const (
	clusterTTL      = 3 * time.Second  // --lease-ttl of every agent: a kill -9 costs seconds, not ten
	settleTimeout   = 30 * time.Second // until every partition is led again, or leadership is balanced
	progressTimeout = 60 * time.Second // until the producers are acknowledged again on every partition
	statusPoll      = 20 * time.Millisecond
)

// cluster is "streamhouse dev --agents 0" (etcd and S3 only) with separate "streamhouse agent"
// processes, each with its own id, zone and addresses.
type cluster struct {
	dev    *dev
	agents map[string]*member // the running incarnation of each agent id
	epochs map[string]int64   // highest leader epoch seen per "topic/partition"
}

// member is one incarnation of an agent.
type member struct {
	*agentProc
	id, az string
	flags  []string // further agent flags (--group …), given again on a restart
}

// startCluster starts dev --agents 0 and n agents a1..an in zones z1..zn, and waits until every
// agent answers /readyz. With n = 0, only dev: the test starts its agents with start.
func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	c := &cluster{dev: startDev(t, t.TempDir(), "--agents", "0"), agents: map[string]*member{}, epochs: map[string]int64{}}
	for i := 1; i <= n; i++ {
		c.start(t, fmt.Sprintf("a%d", i), fmt.Sprintf("z%d", i), "127.0.0.1:0", "127.0.0.1:0")
	}
	return c
}

// start runs agent id in zone az on the given Kafka and HTTP addresses (port 0: any free port), with
// further agent flags such as "--group", "b".
func (c *cluster) start(t *testing.T, id, az, kafka, http string, flags ...string) *member {
	t.Helper()
	name := id
	if old, ok := c.agents[id]; ok {
		name = old.name + "+" // a restart: its own log file and its own lines in a failure report
	}
	a := startAgent(t, c.dev, name, append([]string{"--id", id, "--az", az, "--lease-ttl", clusterTTL.String(),
		"--kafka-addr", kafka, "--http-addr", http}, flags...)...)
	m := &member{agentProc: a, id: id, az: az, flags: flags}
	c.agents[id] = m
	return m
}

// restart starts agent id again with its zone, its flags and both its addresses, as a deploy would. The
// previous incarnation must have exited.
func (c *cluster) restart(t *testing.T, id string) *member {
	t.Helper()
	old := c.agents[id]
	if !old.exited() {
		t.Fatalf("restart %s: the previous process is still running", id)
	}
	return c.start(t, id, old.az, old.kafka, strings.TrimPrefix(old.http, "http://"), old.flags...)
}

// brokers are the Kafka addresses of every agent started so far.
func (c *cluster) brokers() []string {
	var bs []string
	for _, id := range slices.Sorted(maps.Keys(c.agents)) {
		bs = append(bs, c.agents[id].kafka)
	}
	return bs
}

// clusterStatus is the output of "streamhouse cluster status --json".
type clusterStatus struct {
	Agents []struct {
		ID            string `json:"id"`
		AZ            string `json:"az"`
		Addr          string `json:"addr"`
		TTLSeconds    int64  `json:"ttl_seconds"`
		PartitionsLed int    `json:"partitions_led"`
	} `json:"agents"`
	Partitions []partitionStatus `json:"partitions"`
}

type partitionStatus struct {
	Topic      string  `json:"topic"`
	Partition  int32   `json:"partition"`
	Leader     *string `json:"leader"`
	Epoch      int64   `json:"epoch"`
	NextOffset int64   `json:"next_offset"`
	LogStart   int64   `json:"log_start"`
	Segments   int     `json:"segments"`
	Tail       int     `json:"tail"`
	CleanTo    int64   `json:"clean_to"`
	Tombstones int64   `json:"tombstones"`
}

func (p partitionStatus) String() string {
	leader := "-"
	if p.Leader != nil {
		leader = *p.Leader
	}
	return fmt.Sprintf("%s/%d@%s(epoch %d)", p.Topic, p.Partition, leader, p.Epoch)
}

// status runs "streamhouse cluster status --json" and checks that no partition's epoch went back.
func (c *cluster) status(t *testing.T) clusterStatus {
	t.Helper()
	out := mustRun(t, "", bin, "cluster", "status", "--etcd", c.dev.etcd, "--json")
	var st clusterStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("cluster status --json: %v\n%s", err, out)
	}
	for _, p := range st.Partitions {
		key := fmt.Sprintf("%s/%d", p.Topic, p.Partition)
		if p.Leader == nil {
			continue
		}
		if p.Epoch < c.epochs[key] {
			t.Errorf("%v: epoch went back from %d", p, c.epochs[key])
		}
		c.epochs[key] = max(c.epochs[key], p.Epoch)
	}
	return st
}

// leaders maps each partition of topics ("topic/partition") to its leader ("" for none).
func (st clusterStatus) leaders(topics ...string) map[string]string {
	m := map[string]string{}
	for _, p := range st.Partitions {
		if len(topics) == 0 || slices.Contains(topics, p.Topic) {
			m[fmt.Sprintf("%s/%d", p.Topic, p.Partition)] = deref(p.Leader)
		}
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// unled lists the partitions that have no leader among live, registered agents other than those in
// gone; empty when every partition is led.
func (st clusterStatus) unled(gone ...string) []string {
	live := map[string]bool{}
	for _, a := range st.Agents {
		live[a.ID] = !slices.Contains(gone, a.ID)
	}
	var out []string
	for _, p := range st.Partitions {
		if p.Leader == nil || !live[*p.Leader] {
			out = append(out, p.String())
		}
	}
	return out
}

// unbalanced says why leadership is not spread over exactly the agents ids; empty when it is.
// Placement balances each agent group on its own: the topics bound to one (the internal offsets topic
// is bound to the default group) apart from the unbound ones (every topic these tests create), each
// agent leading ⌊P/N⌋ or ⌈P/N⌉ of the P partitions of each.
func (st clusterStatus) unbalanced(ids ...string) string {
	if un := st.unled(); len(un) > 0 {
		return fmt.Sprintf("unled: %s", sample(un))
	}
	led := map[bool]map[string]int{} // bound to a group → agent → partitions led
	total := map[bool]int{}
	for _, p := range st.Partitions {
		bound := strings.HasPrefix(p.Topic, "__consumer_offsets")
		if led[bound] == nil {
			led[bound] = map[string]int{}
		}
		led[bound][*p.Leader]++
		total[bound]++
	}
	for bound, n := range total {
		what := map[bool]string{false: "the unbound topics", true: "the offsets topic"}[bound]
		lo, hi := n/len(ids), (n+len(ids)-1)/len(ids)
		for id, k := range led[bound] {
			if !slices.Contains(ids, id) {
				return fmt.Sprintf("%s leads %d partitions of %s, want none (led: %v)", id, k, what, led[bound])
			}
		}
		for _, id := range ids {
			if k := led[bound][id]; k < lo || k > hi {
				return fmt.Sprintf("%s leads %d of the %d partitions of %s, want %d..%d (led: %v)", id, k, n, what, lo, hi, led[bound])
			}
		}
	}
	return ""
}

// waitStatus polls cluster status until why returns "", failing with the last reason after timeout.
func (c *cluster) waitStatus(t *testing.T, what string, timeout time.Duration, why func(clusterStatus) string) clusterStatus {
	t.Helper()
	st, reason := c.pollStatus(t, timeout, why)
	if reason != "" {
		t.Fatalf("%s: not within %v: %s", what, timeout, reason)
	}
	return st
}

// pollStatus polls cluster status until why returns "" or timeout passes; it returns the last status
// and reason.
func (c *cluster) pollStatus(t *testing.T, timeout time.Duration, why func(clusterStatus) string) (clusterStatus, string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(statusPoll)
	defer tick.Stop()
	for {
		st := c.status(t)
		reason := why(st)
		if reason == "" || time.Now().After(deadline) {
			return st, reason
		}
		<-tick.C
	}
}

// waitLed waits until every partition has a live leader other than the agents in gone and returns the
// time since the fault at from: how long some partition had no usable leader.
func (c *cluster) waitLed(t *testing.T, from time.Time, gone ...string) time.Duration {
	t.Helper()
	c.waitStatus(t, fmt.Sprintf("every partition led by an agent other than %v", gone), settleTimeout,
		func(st clusterStatus) string {
			if un := st.unled(gone...); len(un) > 0 {
				return fmt.Sprintf("%d partitions without a live leader: %s", len(un), sample(un))
			}
			return ""
		})
	return time.Since(from)
}

// waitBalanced waits until leadership is balanced over exactly the agents ids.
func (c *cluster) waitBalanced(t *testing.T, ids ...string) {
	t.Helper()
	c.waitStatus(t, fmt.Sprintf("leadership balanced over %v", ids), settleTimeout, func(st clusterStatus) string {
		return st.unbalanced(ids...)
	})
}

// busiest is the agent leading the most partitions of topics.
func (c *cluster) busiest(t *testing.T, topics ...string) *member {
	t.Helper()
	led := map[string]int{}
	for _, l := range c.status(t).leaders(topics...) {
		led[l]++
	}
	best := ""
	for _, id := range slices.Sorted(maps.Keys(c.agents)) {
		if !c.agents[id].exited() && led[id] > led[best] {
			best = id
		}
	}
	if best == "" {
		t.Fatalf("no running agent leads a partition of %v: %v", topics, led)
	}
	t.Logf("%s leads %d of the partitions of %v", best, led[best], topics)
	return c.agents[best]
}

// signal sends sig to the agent's process.
func (m *member) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s: send %v: %v", m.name, sig, err)
	}
}

// terminate sends SIGTERM and waits for a clean exit (0). proc.stop is not used: a second SIGTERM
// would make the agent exit at once instead of handing its partitions over.
func (m *member) terminate(t *testing.T) {
	t.Helper()
	m.signal(t, syscall.SIGTERM)
	m.waitExit(t)
}

// waitExit waits for an agent sent SIGTERM to exit 0.
func (m *member) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-m.done:
	case <-time.After(stopTimeout):
		t.Fatalf("%s did not exit within %v of SIGTERM", m.name, stopTimeout)
	}
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0 (%v)", m.name, code, m.cmd.ProcessState)
	}
}

// pause stops the agent with SIGSTOP; it is continued, at the latest, when the test ends, so that
// the cleanup's SIGTERM can reach it.
func (m *member) pause(t *testing.T) {
	t.Helper()
	m.signal(t, syscall.SIGSTOP)
	t.Cleanup(func() { _ = m.cmd.Process.Signal(syscall.SIGCONT) })
}

// client is a franz-go client seeded with every agent, closed when the test ends.
func (c *cluster) client(t *testing.T, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(c.brokers()...)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
