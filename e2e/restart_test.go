package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// A SIGTERM stops dev mode cleanly (exit 0, no error logged); started again on the same data
// directory, on other ports, it serves every record and topic it had, and new records continue at the
// next offsets.
func TestRestartAfterSIGTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDev(t, dir)
	createTopic(t, d.brokers(t), "restart", 3)
	before := values("before", 300)
	acked := kgoProduce(t, d.brokers(t), "restart", before, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	d.stop(t)
	// Shutdown closes the agent's etcd session: that is no session loss, to be logged as an error and
	// answered by registering again on a fresh lease after deregistering (fixed in 84ac4b0).
	if errs := d.logErrors(); len(errs) > 0 {
		t.Errorf("a graceful stop logged errors:\n%s", strings.Join(errs, "\n"))
	}

	d = startDev(t, dir)
	recs := readAll(t, d.brokers(t), "restart")
	checkLog(t, recs, before)
	checkAcked(t, recs, acked)
	checkContinues(t, d.brokers(t), "restart", before)
}

// A SIGKILL of dev mode while a producer is busy loses nothing that was acknowledged: after a restart
// on the same data directory every acknowledged record is there exactly once, offsets are dense, and
// new records continue at the next offsets. The restart keeps the Kafka address, as "make dev" does;
// TestRestartAfterSIGKILLOnNewPorts covers a restart on other ports.
func TestRestartAfterSIGKILL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDev(t, dir)
	kafka := d.brokers(t)
	createTopic(t, kafka, "crash", 3)
	acked, sent := produceUntilKilled(t, d, "crash", 300)

	d = startDev(t, dir, "--kafka-addr", kafka)
	recs := readAll(t, d.brokers(t), "crash")
	checkOffsets(t, recs, nil)
	checkAcked(t, recs, acked)
	seen := map[string]int{}
	for _, r := range recs {
		seen[r.value]++
	}
	for v, n := range seen {
		if !sent[v] || n > 1 {
			t.Errorf("read %q %d times; it was sent: %v", v, n, sent[v])
		}
	}
	for v := range acked {
		if seen[v] == 0 {
			t.Errorf("acknowledged %s is missing after the restart", v)
		}
	}
	present := make([]string, 0, len(seen))
	for v := range seen {
		present = append(present, v)
	}
	checkContinues(t, d.brokers(t), "crash", present)
}

// After a SIGKILL, dev mode starts again on the same data directory even when its Kafka port changes
// (port 0 picks a new one each time). Reproduces a bug: the killed process's agent registration is
// still on a live etcd lease, so the new dev-1 is refused ("agent id registered by a live agent at
// another address"), and since every start of dev restarts etcd, which extends that lease, it never
// expires: dev cannot start on that data directory again except on the old Kafka address.
func TestRestartAfterSIGKILLOnNewPorts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	d := startDev(t, dir)
	createTopic(t, d.brokers(t), "crash", 1)
	acked, _ := produceUntilKilled(t, d, "crash", 50)

	d = startDev(t, dir)
	recs := readAll(t, d.brokers(t), "crash")
	checkOffsets(t, recs, nil)
	checkAcked(t, recs, acked)
}

// produceUntilKilled produces to topic until at least n records are acknowledged, SIGKILLs dev while
// the producer is still busy, and returns what was acknowledged and what was sent.
func produceUntilKilled(t *testing.T, d *dev, topic string, n int) (map[string]record, map[string]bool) {
	t.Helper()
	p := startBusyProducer(t, d.brokers(t), topic, n)
	select {
	case <-p.enough:
	case <-time.After(readTimeout):
		t.Fatalf("fewer than %d records acknowledged within %v", n, readTimeout)
	}
	d.kill(t)
	acked, sent := p.stop()
	t.Logf("killed dev with %d of %d records acknowledged", len(acked), len(sent))
	return acked, sent
}

// checkContinues produces more records to a topic holding exactly old and checks that they get the
// offsets after the old ones and that the whole log reads back dense.
func checkContinues(t *testing.T, brokers, topic string, old []string) {
	t.Helper()
	ends := endOffsets(t, brokers, topic)
	more := values("after", 150)
	acked := kgoProduce(t, brokers, topic, more, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	next := map[int32]int64{}
	for p, end := range ends {
		next[p] = end
	}
	var fresh []record
	for _, r := range acked {
		fresh = append(fresh, r)
	}
	checkOffsets(t, fresh, next) // each partition's new records start at its old end offset
	checkLog(t, readAll(t, brokers, topic), append(append([]string(nil), old...), more...))
}

// busyProducer produces records as fast as franz-go pipelines them (idempotent, acks=all) until
// stopped, remembering what it sent and what was acknowledged.
type busyProducer struct {
	cl       *kgo.Client
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	enough   chan struct{} // closed once `want` records are acknowledged
	stopOnce sync.Once

	mu    sync.Mutex
	sent  map[string]bool
	acked map[string]record
}

func startBusyProducer(t *testing.T, brokers, topic string, want int) *busyProducer {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic(topic), kgo.MaxBufferedRecords(500))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &busyProducer{cl: cl, cancel: cancel, enough: make(chan struct{}), sent: map[string]bool{}, acked: map[string]record{}}
	t.Cleanup(func() { p.stop() })
	p.wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			v := fmt.Sprintf("crash-%07d", i)
			p.mu.Lock()
			p.sent[v] = true
			p.mu.Unlock()
			p.cl.Produce(ctx, kgo.StringRecord(v), func(r *kgo.Record, err error) {
				if err == nil {
					p.ack(r, want)
				}
			})
		}
	})
	return p
}

func (p *busyProducer) ack(r *kgo.Record, want int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.acked[string(r.Value)] = record{partition: r.Partition, offset: r.Offset, value: string(r.Value)}
	if len(p.acked) == want {
		close(p.enough)
	}
}

// stop ends producing, fails what is unacknowledged and returns what was acknowledged and sent.
func (p *busyProducer) stop() (map[string]record, map[string]bool) {
	p.stopOnce.Do(func() {
		p.cancel()
		p.wg.Wait()
		p.cl.Close() // fails every buffered record: no promise runs after this
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked, p.sent
}
