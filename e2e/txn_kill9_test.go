package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Transactions through a kill -9 (issue 17): three agents (transactions are on by default); the
// agent coordinating a transactional id is killed while its transactions run. Nothing a producer was
// told is committed may be lost, and a read_committed consumer must read nothing of a transaction
// that aborted: each transaction is read whole or not at all.

// txnTimeout bounds the transactional workloads of these tests, failover included.
const txnTimeout = 2 * time.Minute

// startTxnCluster starts dev and three agents with transactions on.
func startTxnCluster(t *testing.T) *cluster {
	t.Helper()
	c := startCluster(t, 0)
	for _, id := range threeAgents {
		c.start(t, id, "z"+strings.TrimPrefix(id, "a"), "127.0.0.1:0", "127.0.0.1:0")
	}
	return c
}

// txnCoordinator is the running agent that coordinates transactional id id (FindCoordinator).
func (c *cluster) txnCoordinator(t *testing.T, id string) *member {
	t.Helper()
	cl := c.client(t)
	deadline := time.Now().Add(settleTimeout)
	for {
		req := kmsg.NewPtrFindCoordinatorRequest()
		req.CoordinatorType, req.CoordinatorKey, req.CoordinatorKeys = 1, id, []string{id}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := req.RequestWith(ctx, cl)
		cancel()
		var addr string
		if err == nil {
			host, port, code := resp.Host, resp.Port, resp.ErrorCode
			if len(resp.Coordinators) > 0 {
				co := resp.Coordinators[0]
				host, port, code = co.Host, co.Port, co.ErrorCode
			}
			if code == 0 {
				addr = net.JoinHostPort(host, strconv.Itoa(int(port)))
			}
		}
		for _, m := range c.agents {
			if addr != "" && m.kafka == addr && !m.exited() {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no running agent coordinates transactional id %s (last answer %q, %v)", id, addr, err)
		}
		time.Sleep(statusPoll) // polling an answer, bounded by the deadline
	}
}

// readCommittedAll reads every record of topic with a read_committed consumer, up to a plain
// sentinel record written to each partition after the workload ended: reading it means every
// transaction before it was resolved and passed (the last stable offset is past it).
func readCommittedAll(t *testing.T, c *cluster, topic string, partitions int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	plain := c.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for p := range partitions {
		r := &kgo.Record{Topic: topic, Partition: int32(p), Key: []byte("sentinel")}
		if err := plain.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("sentinel to %s[%d]: %v", topic, p, err)
		}
	}
	cl := c.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	var out []*kgo.Record
	sentinels := map[int32]bool{}
	for len(sentinels) < partitions {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read_committed %s: %d sentinels of %d within %v (%d records)", topic, len(sentinels), partitions, readTimeout, len(out))
		}
		fs.EachError(func(topic string, p int32, err error) { t.Logf("read_committed %s[%d]: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Key) == "sentinel" {
				sentinels[r.Partition] = true
				return
			}
			out = append(out, r)
		})
	}
	return out
}

// franz-go's GroupTransactSession (consume -> transform -> produce, offsets committed in the
// transaction), two members, through a kill -9 of the agent coordinating one member's transactional
// id: every input record comes out exactly once for a read_committed consumer — no committed output
// lost, none of an aborted transaction read, none twice.
func TestTxnGroupTransactSessionKill9(t *testing.T) {
	t.Parallel()
	c := startTxnCluster(t)
	const in, out, group, n, partitions = "txk-in", "txk-out", "txk-etl", 3000, 4
	brokers := strings.Join(c.brokers(), ",")
	createTopic(t, brokers, in, partitions)
	createTopic(t, brokers, out, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), txnTimeout)
	defer cancel()
	var input []*kgo.Record
	for i := range n {
		input = append(input, &kgo.Record{Topic: in, Key: fmt.Appendf(nil, "k-%05d", i)})
	}
	if err := c.client(t).ProduceSync(ctx, input...).FirstErr(); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var endErrs []string
	committedTxns := 0
	stop := make(chan struct{})
	member := func(id string) {
		for {
			sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(c.brokers()...), kgo.TransactionalID(id),
				kgo.ConsumerGroup(group), kgo.ConsumeTopics(in), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
				kgo.DefaultProduceTopic(out), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(4000),
				kgo.RequestTimeoutOverhead(2*time.Second), kgo.RetryTimeout(30*time.Second))
			if err != nil {
				t.Error(err)
				return
			}
			for err == nil {
				select {
				case <-stop:
					sess.Close()
					return
				default:
				}
				pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
				fs := sess.PollFetches(pctx)
				pcancel()
				if err = sess.Begin(); err != nil {
					break
				}
				fs.EachRecord(func(r *kgo.Record) { sess.Produce(ctx, &kgo.Record{Key: r.Key}, nil) })
				var committed bool
				if committed, err = sess.End(ctx, kgo.TryCommit); committed && len(fs.Records()) > 0 {
					mu.Lock()
					committedTxns++
					mu.Unlock()
				}
			}
			// No error of End is retryable: the application starts a new session with the same
			// transactional id, which fences the old producer and ends its transaction.
			mu.Lock()
			endErrs = append(endErrs, fmt.Sprintf("%s: %v", id, err))
			mu.Unlock()
			sess.Close()
			if ctx.Err() != nil {
				return
			}
		}
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { member(fmt.Sprintf("txk-etl-%d", i)) })
	}
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	})

	// progress is how many input records the group's committed offsets have passed. A new admin
	// client of the running agents each time: one that used the dead coordinator may keep dialing it
	// (kgo's cached coordinator of a sharded OffsetFetch).
	var lastErr error
	progress := func() int64 {
		octx, ocancel := context.WithTimeout(ctx, 5*time.Second)
		defer ocancel()
		var seeds []string
		for _, m := range c.agents {
			if !m.exited() {
				seeds = append(seeds, m.kafka)
			}
		}
		cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...))
		if err != nil {
			lastErr = err
			return -1
		}
		defer cl.Close()
		resps, err := kadm.NewClient(cl).FetchOffsets(octx, group)
		if err != nil {
			lastErr = err
			return -1
		}
		var sum int64
		resps.Each(func(o kadm.OffsetResponse) {
			if o.Topic == in && o.Err == nil && o.At > 0 {
				sum += o.At
			}
		})
		return sum
	}
	waitProgress := func(what string, want int64) {
		for got := progress(); got < want; got = progress() {
			if ctx.Err() != nil {
				for _, id := range threeAgents {
					for _, l := range warnLines(c.agents[id].proc, 20) {
						t.Logf("%s: %s", id, l)
					}
				}
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("%s: the group's committed offsets passed %d of %d input records within %v (last error %v; %d committed transactions; session errors %v)",
					what, got, want, txnTimeout, lastErr, committedTxns, endErrs)
			}
			time.Sleep(100 * time.Millisecond) // polling committed offsets, bounded by ctx
		}
	}
	waitProgress("before the kill", n/4)
	victim := c.txnCoordinator(t, "txk-etl-0")
	fault := time.Now()
	victim.kill(t)
	t.Logf("kill -9 of %s (coordinator of txk-etl-0) with %d input records committed", victim.id, progress())
	waitProgress("after the kill", n)
	t.Logf("all %d input records committed %v after the kill", n, time.Since(fault).Round(time.Millisecond))
	close(stop)
	wg.Wait()
	mu.Lock()
	t.Logf("%d committed transactions with records; sessions restarted after %d errors: %v", committedTxns, len(endErrs), endErrs)
	mu.Unlock()

	seen := map[string]int{}
	for _, r := range readCommittedAll(t, c, out, partitions) {
		seen[string(r.Key)]++
	}
	var missing, twice []string
	for _, r := range input {
		switch seen[string(r.Key)] {
		case 0:
			missing = append(missing, string(r.Key))
		case 1:
		default:
			twice = append(twice, string(r.Key))
		}
	}
	if len(missing) > 0 || len(twice) > 0 || len(seen) != n {
		t.Fatalf("read_committed output: %d keys (want %d); %d missing (lost) %.10v; %d read more than once (aborted read or duplicate) %.10v",
			len(seen), n, len(missing), missing, len(twice), twice)
	}
}

// txnOutcome is what a transactional producer was told about one transaction.
type txnOutcome int

const (
	txnCommitted txnOutcome = iota // CommitTxn answered success
	txnAborted                     // AbortTxn answered success
	txnUnknown                     // neither: the producer was replaced (its successor ends the transaction)
)

// sarama's transactional producer writes transactions of a few records over three partitions,
// committing three in four and aborting the fourth, and the agent coordinating its transactional id
// is killed -9 between a transaction's records and its commit. A read_committed consumer then reads
// every record of each committed transaction once, nothing of an aborted one, and each transaction
// whose outcome the producer could not learn whole or not at all.
func TestTxnSaramaKill9(t *testing.T) {
	t.Parallel()
	c := startTxnCluster(t)
	const topic, id, txns, per, partitions = "txk-sarama", "txk-sarama-producer", 60, 6, 3
	createTopic(t, strings.Join(c.brokers(), ","), topic, partitions)
	ctx, cancel := context.WithTimeout(context.Background(), txnTimeout)
	defer cancel()

	newProducer := func() sarama.SyncProducer {
		cfg := saramaConfig("none")
		cfg.Producer.Idempotent = true
		cfg.Producer.Partitioner = sarama.NewManualPartitioner
		cfg.Producer.RequiredAcks = sarama.WaitForAll
		cfg.Net.MaxOpenRequests = 1
		cfg.Producer.Transaction.ID = id
		cfg.Producer.Retry.Max, cfg.Producer.Retry.Backoff = 30, 200*time.Millisecond
		cfg.Producer.Transaction.Retry.Max, cfg.Producer.Transaction.Retry.Backoff = 30, 200*time.Millisecond
		for {
			p, err := sarama.NewSyncProducer(c.brokers(), cfg)
			if err == nil {
				return p
			}
			if ctx.Err() != nil {
				t.Fatalf("sarama transactional producer: %v", err)
			}
			t.Logf("sarama transactional producer (retrying): %v", err)
			time.Sleep(200 * time.Millisecond) // a coordinator taking over; bounded by ctx
		}
	}
	p := newProducer()
	defer func() { _ = p.Close() }()

	outcomes := make([]txnOutcome, txns)
	const killAt = txns / 3
	var victim *member
	for i := range txns {
		var err error
		if err = p.BeginTxn(); err == nil {
			var msgs []*sarama.ProducerMessage
			for j := range per {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Partition: int32(j % partitions),
					Value: sarama.StringEncoder(fmt.Sprintf("t%03d-r%d", i, j))})
			}
			err = p.SendMessages(msgs)
		}
		if i == killAt {
			victim = c.txnCoordinator(t, id)
			victim.kill(t) // mid-transaction: its records are written, its end is not
			t.Logf("kill -9 of %s, the coordinator of %s, in transaction %d", victim.id, id, i)
		}
		outcomes[i] = txnUnknown
		switch {
		case err != nil:
		case i%4 == 3:
			if err = p.AbortTxn(); err == nil {
				outcomes[i] = txnAborted
			}
		default:
			if err = p.CommitTxn(); err == nil {
				outcomes[i] = txnCommitted
			}
		}
		if err == nil {
			continue
		}
		t.Logf("transaction %d: %v (status %v)", i, err, p.TxnStatus())
		if p.TxnStatus()&sarama.ProducerTxnFlagAbortableError != 0 {
			aerr := p.AbortTxn()
			if aerr == nil {
				outcomes[i] = txnAborted
				continue
			}
			t.Logf("transaction %d: abort: %v", i, aerr)
		}
		// Fatal, or the abort failed: a new producer with the same id fences this one and ends
		// its transaction, whichever way the coordinator had decided.
		_ = p.Close()
		p = newProducer()
	}
	if victim == nil {
		t.Fatal("no agent was killed")
	}
	counts := map[txnOutcome]int{}
	for _, o := range outcomes {
		counts[o]++
	}
	t.Logf("%d transactions: %d committed, %d aborted, %d unknown", txns, counts[txnCommitted], counts[txnAborted], counts[txnUnknown])
	if counts[txnCommitted] < txns/2 {
		t.Errorf("only %d of %d transactions committed", counts[txnCommitted], txns)
	}

	read := map[int]map[string]int{} // transaction -> value -> times read
	for _, r := range readCommittedAll(t, c, topic, partitions) {
		v := string(r.Value)
		var i, j int
		if _, err := fmt.Sscanf(v, "t%03d-r%d", &i, &j); err != nil || i < 0 || i >= txns {
			t.Errorf("unexpected record %q at %s[%d]@%d", v, r.Topic, r.Partition, r.Offset)
			continue
		}
		if read[i] == nil {
			read[i] = map[string]int{}
		}
		read[i][v]++
	}
	var problems []string
	for i, o := range outcomes {
		got := read[i]
		twice := 0
		for _, k := range got {
			if k > 1 {
				twice++
			}
		}
		switch {
		case twice > 0:
			problems = append(problems, fmt.Sprintf("transaction %d: %d records read more than once", i, twice))
		case o == txnCommitted && len(got) != per:
			problems = append(problems, fmt.Sprintf("transaction %d committed: %d of its %d records read (lost)", i, len(got), per))
		case o == txnAborted && len(got) != 0:
			problems = append(problems, fmt.Sprintf("transaction %d aborted: %d of its records read (aborted read)", i, len(got)))
		case o == txnUnknown && len(got) != 0 && len(got) != per:
			problems = append(problems, fmt.Sprintf("transaction %d of unknown outcome: %d of its %d records read (not atomic)", i, len(got), per))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("read_committed after the kill -9: %s", strings.Join(problems, "; "))
	}
}

// warnLines is the last n warning or error lines of p's log.
func warnLines(p *proc, n int) []string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"@level":"warn"`) || strings.Contains(l, `"@level":"error"`) {
			out = append(out, l)
		}
	}
	return out[max(0, len(out)-n):]
}
