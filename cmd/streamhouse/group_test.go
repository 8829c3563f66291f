package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// groupConsumer joins group g on topic t through the CLI's brokers and consumes n records.
func groupConsumer(t *testing.T, c *testCLI, g, topic string, n int) *kgo.Client {
	t.Helper()
	brokers, _ := c.lookupEnv("STREAMHOUSE_BROKERS")
	cl, err := kgo.NewClient(kgo.SeedBrokers(splitList(brokers)...), kgo.ConsumerGroup(g), kgo.ConsumeTopics(topic),
		kgo.ClientID("the-consumer"), kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for got := 0; got < n; {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatal(err)
		}
		got += fs.NumRecords()
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	return cl
}

func TestGroupCommands(t *testing.T) {
	c := newKfake(t, "")
	c.mustRun(t, "topic", "create", "t", "--partitions", "2")
	c.stdin = strings.NewReader("a\nb\nc\nd\n")
	c.mustRun(t, "produce", "t", "--partition", "0")
	c.stdin = strings.NewReader("e\n")
	c.mustRun(t, "produce", "t", "--partition", "1")
	cl := groupConsumer(t, c, "readers", "t", 5)

	out := c.mustRun(t, "group", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "GROUP") || !strings.HasPrefix(lines[1], "readers") ||
		!strings.Contains(lines[1], "Stable") || !strings.Contains(lines[1], "consumer") {
		t.Errorf("list:\n%s", out)
	}

	out = c.mustRun(t, "group", "describe", "readers")
	t.Logf("group describe:\n%s", out)
	for _, want := range []string{"group: readers\n", "state: Stable\n", "members: 1\n", "the-consumer", "t[0,1]",
		"TOPIC", "LAG", "total lag: 0\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}

	if code := c.exec("group", "reset-offsets", "readers", "--topic", "t", "--to-earliest"); code != 1 ||
		!strings.Contains(c.err.String(), "active member") {
		t.Errorf("reset with a member: exit %d, stderr %q", code, c.err)
	}
	cl.LeaveGroup()
	cl.Close()

	out = c.mustRun(t, "group", "reset-offsets", "readers", "--topic", "t", "--to-earliest")
	if !strings.Contains(out, "t      0          4    0\n") || !strings.Contains(out, "t      1          1    0\n") {
		t.Errorf("reset to earliest:\n%s", out)
	}
	if out := c.mustRun(t, "group", "describe", "readers"); !strings.Contains(out, "state: Empty") || !strings.Contains(out, "total lag: 5\n") {
		t.Errorf("describe after the reset:\n%s", out)
	}
	out = c.mustRun(t, "group", "reset-offsets", "readers", "--topic", "t", "--to-offset", "3", "--partitions", "0,1")
	if !strings.Contains(out, "t      0          0    3\n") || !strings.Contains(out, "t      1          0    1\n") ||
		!strings.Contains(c.err.String(), "partition 1: 3 is outside [0, 1], using 1") {
		t.Errorf("reset to an offset:\n%s\nstderr: %s", out, c.err)
	}
	out = c.mustRun(t, "group", "reset-offsets", "readers", "--topic", "t", "--to-latest", "--dry-run", "--partitions", "0")
	if !strings.Contains(out, "dry run") || !strings.Contains(out, "t      0          3    4\n") || strings.Contains(out, "t      1") {
		t.Errorf("dry run:\n%s", out)
	}
	if out := c.mustRun(t, "group", "describe", "readers"); !strings.Contains(out, "total lag: 1\n") {
		t.Errorf("a dry run changed offsets:\n%s", out)
	}

	for _, args := range [][]string{
		{"group", "reset-offsets", "readers", "--topic", "t"},
		{"group", "reset-offsets", "readers", "--topic", "t", "--to-earliest", "--to-latest"},
		{"group", "reset-offsets", "readers", "--to-earliest"},
		{"group", "reset-offsets", "readers", "--topic", "t", "--to-earliest", "--partitions", "x"},
		{"group", "reset-offsets", "readers", "--topic", "t", "--to-earliest", "--partitions", "7"},
		{"group", "describe"},
		{"group", "frobnicate"},
		{"group"},
	} {
		if code := c.exec(args...); code != exitUsage {
			t.Errorf("%s: exit %d, want %d (stderr %q)", strings.Join(args, " "), code, exitUsage, c.err)
		}
	}
	if out := c.mustRun(t, "group", "--help"); !strings.Contains(out, "reset-offsets") {
		t.Errorf("group --help:\n%s", out)
	}
}
