package main

import (
	"fmt"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// newKfake starts franz-go's in-memory broker and returns a CLI pointed at it through STREAMHOUSE_BROKERS.
func newKfake(t *testing.T, stdin string) *testCLI {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	return newTestCLI(t, map[string]string{"STREAMHOUSE_BROKERS": strings.Join(cluster.ListenAddrs(), ",")}, stdin)
}

func TestTopicCommands(t *testing.T) {
	c := newKfake(t, "")
	if out := c.mustRun(t, "topic", "create", "orders", "--partitions", "3", "--config", "max.message.bytes=2097152",
		"--config", "retention.ms=60000"); out != "created topic orders with 3 partitions\n" {
		t.Errorf("create: %q", out)
	}
	c.mustRun(t, "topic", "create", "--partitions=1", "audit")

	lines := strings.Split(strings.TrimSpace(c.mustRun(t, "topic", "list")), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "TOPIC") || strings.Fields(lines[1])[0] != "audit" ||
		!slices.Equal(strings.Fields(lines[2]), []string{"orders", "3"}) {
		t.Errorf("list:\n%s", strings.Join(lines, "\n"))
	}

	out := c.mustRun(t, "topic", "describe", "orders")
	t.Logf("topic describe:\n%s", out)
	for _, want := range []string{"topic: orders\n", "partitions: 3\n", "PARTITION", "LEADER EPOCH",
		"  max.message.bytes=2097152\n", "  retention.ms=60000\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	for p := range 3 {
		if !strings.Contains(out, fmt.Sprintf("\n%d ", p)) {
			t.Errorf("describe lacks partition %d:\n%s", p, out)
		}
	}

	if code := c.exec("topic", "create", "orders", "--partitions", "3"); code != 1 ||
		!strings.Contains(c.err.String(), "TOPIC_ALREADY_EXISTS") {
		t.Errorf("create twice: exit %d, stderr %q", code, c.err)
	}
	c.mustRun(t, "topic", "delete", "orders")
	if code := c.exec("topic", "describe", "orders"); code != 1 ||
		!strings.Contains(c.err.String(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("describe deleted: exit %d, stderr %q", code, c.err)
	}
	if code := c.exec("topic", "delete", "orders"); code != 1 || strings.Count(c.err.String(), "\n") != 1 {
		t.Errorf("delete deleted: exit %d, stderr %q", code, c.err)
	}
}

func TestProduceConsume(t *testing.T) {
	c := newKfake(t, "")
	c.mustRun(t, "topic", "create", "t", "--partitions", "3")

	c.stdin = strings.NewReader("k1=v1\nk2=v=2\r\nk3=\n")
	if out := c.mustRun(t, "produce", "t", "--key-separator", "=", "--partition", "1"); out != "" {
		t.Errorf("produce printed %q", out)
	}
	c.stdin = strings.NewReader("a\nb\n\nc") // an empty line is an empty record; the last line needs no newline
	c.mustRun(t, "produce", "t")

	out := c.mustRun(t, "consume", "t", "--partition", "1", "--from-beginning", "--max", "3", "--print-keys")
	if out != "k1\tv1\nk2\tv=2\nk3\t\n" {
		t.Errorf("consume partition 1 = %q", out)
	}
	out = c.mustRun(t, "consume", "t", "--partition", "1", "--offset", "1", "--max", "1")
	if out != "v=2\n" {
		t.Errorf("consume at offset 1 = %q", out)
	}
	out = c.mustRun(t, "consume", "t", "--from-beginning", "--max", "7")
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	slices.Sort(got)
	if want := []string{"", "a", "b", "c", "v1", "v=2", "v"}; len(got) != 7 || !slices.Contains(got, "a") || !slices.Contains(got, "c") || !slices.Contains(got, "v=2") {
		t.Errorf("consume all = %q, want %q in any order", got, want)
	}

	// Without --from-beginning a consumer starts at the end: nothing old arrives before the timeout.
	if out := c.mustRun(t, "consume", "t", "--timeout", "500ms"); out != "" {
		t.Errorf("consume from the end = %q", out)
	}
	// --max not reached within --timeout is a failure.
	start := time.Now()
	if code := c.exec("consume", "t", "--partition", "0", "--from-beginning", "--max", "100", "--timeout", "1s"); code != 1 ||
		!strings.Contains(c.err.String(), "of 100 records within 1s") {
		t.Errorf("short consume: exit %d, stderr %q", code, c.err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("short consume took %v", d)
	}
}

func TestProduceFailures(t *testing.T) {
	c := newKfake(t, "")
	c.mustRun(t, "topic", "create", "t", "--partitions", "1")

	c.stdin = strings.NewReader("k=v\nno separator\n")
	if code := c.exec("produce", "t", "--key-separator", "="); code != 1 ||
		!strings.Contains(c.err.String(), "1 of 2 records failed") || !strings.Contains(c.err.String(), "line 2: no key separator") {
		t.Errorf("exit %d, stderr %q", code, c.err)
	}

	c.stdin = strings.NewReader("x\n")
	start := time.Now()
	if code := c.exec("produce", "missing"); code != 1 || !strings.Contains(c.err.String(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("produce to a missing topic: exit %d, stderr %q", code, c.err)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("produce to a missing topic took %v", d)
	}

	if code := c.exec("consume", "missing"); code != 1 || !strings.Contains(c.err.String(), "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Errorf("consume a missing topic: exit %d, stderr %q", code, c.err)
	}
	if code := c.exec("consume", "t", "--partition", "4"); code != 2 || !strings.Contains(c.err.String(), "no partition 4") {
		t.Errorf("consume a missing partition: exit %d, stderr %q", code, c.err)
	}
}

func TestConsumeStopsOnSignal(t *testing.T) {
	c := newKfake(t, "")
	c.mustRun(t, "topic", "create", "t", "--partitions", "1")
	done := make(chan int)
	go func() { done <- c.exec("consume", "t") }()
	time.Sleep(500 * time.Millisecond)
	c.sig <- syscall.SIGINT
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after a signal, stderr %q", code, c.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consume ignored the signal")
	}
}
