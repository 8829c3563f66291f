package e2e

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// groupTimeout bounds the group tests' waits (joins, rebalances after a coordinator's death).
const groupTimeout = 60 * time.Second

// kcatMember is a "kcat -G" (librdkafka balanced consumer) process, its records as lines.
type kcatMember struct {
	cmd  *exec.Cmd
	out  *lineWriter
	log  *lineWriter // stderr: librdkafka's log, with its debug lines when extra asks for them (-d)
	done chan struct{}
}

// startKcatMember starts a kcat -G member of group reading topic; extra are more kcat options.
func startKcatMember(t *testing.T, kcat, brokers, group, topic string, extra ...string) *kcatMember {
	t.Helper()
	m := &kcatMember{out: newLineWriter(), log: newLineWriter(), done: make(chan struct{})}
	args := append([]string{"-b", brokers, "-G", group, "-q", "-u", "-f", kcatFormat,
		"-X", "auto.offset.reset=earliest", "-X", "auto.commit.interval.ms=100"}, extra...)
	m.cmd = exec.Command(kcat, append(args, topic)...)
	m.cmd.Stdout, m.cmd.Stderr, m.cmd.SysProcAttr = m.out, m.log, procAttr()
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()
	t.Cleanup(func() {
		_ = m.cmd.Process.Kill()
		<-m.done
	})
	return m
}

// waitGroup waits until group is Stable with n members.
func waitGroup(t *testing.T, adm *kadm.Client, group string, n int) {
	t.Helper()
	deadline := time.Now().Add(groupTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		gs, err := adm.DescribeGroups(ctx, group)
		cancel()
		if err == nil {
			if g, ok := gs[group]; ok && g.Err == nil && g.State == "Stable" && len(g.Members) == n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s never became Stable with %d members: %v %v", group, n, gs, err)
		}
		time.Sleep(statusPoll) // polling the coordinator, as a client would
	}
}

// produceValues produces n unique values round-robin over partitions and returns them.
func produceValues(t *testing.T, cl *kgo.Client, topic, prefix string, n, partitions int) map[string]bool {
	t.Helper()
	want := map[string]bool{}
	var recs []*kgo.Record
	for i := range n {
		v := fmt.Sprintf("%s-%d", prefix, i)
		want[v] = true
		recs = append(recs, &kgo.Record{Topic: topic, Partition: int32(i % partitions), Value: []byte(v)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), progressTimeout)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	return want
}

// Two librdkafka consumers (kcat -G) share a group across three agent processes: together they read
// every record exactly once, each partition from one of them.
func TestClusterGroupKcat(t *testing.T) {
	t.Parallel()
	kcat := needKcat(t)
	c := startCluster(t, 3)
	brokers := strings.Join(c.brokers(), ",")
	createTopic(t, brokers, "kgrp", 6)
	cl := c.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)

	members := []*kcatMember{startKcatMember(t, kcat, brokers, "kcat-group", "kgrp"), startKcatMember(t, kcat, brokers, "kcat-group", "kgrp")}
	waitGroup(t, adm, "kcat-group", 2)
	want := produceValues(t, cl, "kgrp", "k", 600, 6)

	deadline := time.Now().Add(groupTimeout)
	for {
		n := 0
		for _, m := range members {
			n += len(m.out.all(""))
		}
		if n >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group read %d of %d records", n, len(want))
		}
		select {
		case <-members[0].out.changed:
		case <-members[1].out.changed:
		case <-time.After(time.Second):
		}
	}
	seen := map[string]int{}
	owner := map[int32]int{}
	for i, m := range members {
		for _, r := range parseKcat(t, m.out.text()) {
			seen[r.value]++
			if o, ok := owner[r.partition]; ok && o != i {
				t.Fatalf("partition %d read by both members without a rebalance", r.partition)
			}
			owner[r.partition] = i
		}
	}
	for v := range want {
		if seen[v] != 1 {
			t.Fatalf("value %s read %d times, want once", v, seen[v])
		}
	}
}

// franz-go group consumers across three agent processes keep consuming when the group's coordinator is
// killed with kill -9: no record is lost, and no committed offset ever goes back.
func TestClusterGroupCoordinatorKill9(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 3)
	brokers := strings.Join(c.brokers(), ",")
	createTopic(t, brokers, "ggrp", 6)
	cl := c.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)

	var mu sync.Mutex
	seen := map[string]int{}
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var wg sync.WaitGroup
	for range 3 {
		m := c.client(t, kgo.ConsumerGroup("kgo-group"), kgo.ConsumeTopics("ggrp"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitInterval(100*time.Millisecond),
			kgo.FetchMaxWait(200*time.Millisecond))
		wg.Go(func() {
			for ctx.Err() == nil {
				fs := m.PollFetches(ctx)
				mu.Lock()
				fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
				mu.Unlock()
			}
		})
	}
	waitGroup(t, adm, "kgo-group", 3)
	want := produceValues(t, cl, "ggrp", "before", 300, 6)

	// Watch the committed offsets: they may stand still, never go back.
	committed := map[int32]int64{}
	checkCommits := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		offs, err := adm.FetchOffsets(ctx, "kgo-group")
		if err != nil {
			return // the coordinator may be moving
		}
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Err == nil && o.At < committed[o.Partition] {
				t.Errorf("partition %d: committed offset went back from %d to %d", o.Partition, committed[o.Partition], o.At)
			}
			committed[o.Partition] = max(committed[o.Partition], o.At)
		})
	}
	checkCommits()

	coord := coordinatorOf(t, c, adm, "kgo-group")
	t.Logf("killing the coordinator %s", coord.id)
	coord.kill(t)
	for v := range produceValues(t, cl, "ggrp", "after", 300, 6) {
		want[v] = true
	}
	deadline := time.Now().Add(groupTimeout)
	for {
		checkCommits()
		mu.Lock()
		missing := 0
		for v := range want {
			if seen[v] == 0 {
				missing++
			}
		}
		mu.Unlock()
		total := int64(0)
		for _, o := range committed {
			total += o
		}
		if missing == 0 && total == int64(len(want)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d records never read; committed %d", missing, len(want), total)
		}
		time.Sleep(100 * time.Millisecond) // polling the group's progress
	}
	stop()
	wg.Wait()
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups++
		}
	}
	t.Logf("all %d records read; %d re-read after the coordinator's death (at-least-once from the last commit)", len(want), dups)
}

// coordinatorOf is the agent coordinating group.
func coordinatorOf(t *testing.T, c *cluster, adm *kadm.Client, group string) *member {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := adm.FindGroupCoordinators(ctx, group)
	co, ok := resp[group]
	if !ok || co.Err != nil {
		t.Fatalf("find coordinator of %s: %v", group, co.Err)
	}
	addr := net.JoinHostPort(co.Host, strconv.Itoa(int(co.Port)))
	for _, m := range c.agents {
		if m.kafka == addr {
			return m
		}
	}
	t.Fatalf("coordinator %s is no agent of the cluster", addr)
	return nil
}
