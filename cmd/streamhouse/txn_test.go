package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// txnProducer is a transactional producer of id writing to topic through the CLI's brokers.
func txnProducer(t *testing.T, c *testCLI, id, topic string) *kgo.Client {
	t.Helper()
	brokers, _ := c.lookupEnv("STREAMHOUSE_BROKERS")
	cl, err := kgo.NewClient(kgo.SeedBrokers(splitList(brokers)...), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic),
		kgo.TransactionTimeout(time.Minute), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func TestTxnCommands(t *testing.T) { txnScenario(t, newKfake(t, "")) }

// The same against StreamHouse's own transaction coordinator and DescribeProducers.
func TestTxnCommandsDev(t *testing.T) {
	d := startDev(t, t.TempDir())
	txnScenario(t, newTestCLI(t, map[string]string{"STREAMHOUSE_BROKERS": d.line(t, "kafka address")}, ""))
}

// txnScenario lists, describes and shows the producers of an open transaction, then of it committed.
func txnScenario(t *testing.T, c *testCLI) {
	c.mustRun(t, "topic", "create", "t", "--partitions", "2")
	cl := txnProducer(t, c, "tx-1", "t")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []int32{0, 1, 1} {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("v"), Partition: p}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	out := c.mustRun(t, "txn", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "TRANSACTIONAL ID") || strings.Fields(lines[1])[0] != "tx-1" ||
		strings.Fields(lines[1])[1] != "Ongoing" {
		t.Errorf("list:\n%s", out)
	}
	if out := c.mustRun(t, "txn", "list", "--state", "CompleteCommit"); strings.Contains(out, "tx-1") {
		t.Errorf("list of CompleteCommit shows the ongoing transaction:\n%s", out)
	}
	if code := c.exec("txn", "list", "--state", "Bogus"); code != exitUsage || !strings.Contains(c.err.String(), "--state") {
		t.Errorf("list --state Bogus: exit %d, stderr %q", code, c.err)
	}

	out = c.mustRun(t, "txn", "describe", "tx-1")
	t.Logf("txn describe:\n%s", out)
	for _, want := range []string{"transactional id: tx-1\n", "state: Ongoing\n", "producer epoch: 0\n", "timeout: 1m0s\n",
		"partitions: t[0,1]\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("describe lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "started: -") {
		t.Errorf("describe of an ongoing transaction without a start time:\n%s", out)
	}

	out = c.mustRun(t, "txn", "producers", "t")
	t.Logf("txn producers:\n%s", out)
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if len(rows) != 3 || !strings.HasPrefix(rows[0], "PARTITION") {
		t.Fatalf("producers:\n%s", out)
	}
	for i, want := range [][2]string{{"0", "0"}, {"1", "1"}} { // partition, last sequence; both transactions open at 0
		f := strings.Fields(rows[i+1])
		if f[0] != want[0] || f[3] != want[1] || f[len(f)-1] != "0" {
			t.Errorf("producers row %d: %q, want partition %s, last sequence %s, transaction at 0", i, rows[i+1], want[0], want[1])
		}
	}

	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for strings.Contains(c.mustRun(t, "txn", "list", "--state", "Ongoing", "--state", "PrepareCommit"), "tx-1") {
		if time.Now().After(deadline) { // (CompleteCommit in StreamHouse; kfake goes straight to Empty)
			t.Fatalf("tx-1 never completed:\n%s", c.mustRun(t, "txn", "list"))
		}
		time.Sleep(20 * time.Millisecond) // polling the coordinator's state, not waiting for an event
	}
	if out := c.mustRun(t, "txn", "list"); !strings.Contains(out, "tx-1") {
		t.Errorf("list after the commit:\n%s", out)
	}
	if code := c.exec("txn", "describe"); code != exitUsage {
		t.Errorf("describe without an id: exit %d", code)
	}
	if code := c.exec("txn", "describe", "unknown-tx"); code == 0 {
		t.Errorf("describe of an unknown id: exit 0, stdout %q", c.out)
	}
}
