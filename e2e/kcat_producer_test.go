package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The librdkafka producer under faults: kcat -P, idempotent with acks=all, reads lines that the test
// writes into its stdin at a steady rate and produces each as a record (no key: librdkafka's sticky
// partitioner spreads them over the partitions) while agents stop or die. kcat prints one line per
// delivery report on stderr (-v -v: "Message delivered to partition P (offset O)", or "Delivery failed
// for message: …") and exits 1 when any record failed. After the faults the test closes kcat's stdin;
// kcat must exit 0 with every line delivered, and the topic, read back from offset 0 with franz-go,
// must hold every line exactly once, at dense offsets, in the order written per partition, at the
// partition and offset its delivery report gave.
const (
	kcatPartitions = 6
	kcatLineTick   = 4 * time.Millisecond // 250 lines/s
	// kcatLineSize is the length of every input line with its newline. kcat reads its input with
	// fread(…, 128, stdin) (kcat's input.c), which returns only once it has 128 bytes: a line of exactly
	// that size is produced as soon as it is written, and kcat, which serves its delivery reports
	// after each line it produces, prints each report within about a tick of its arrival.
	kcatLineSize = 128
	// kcatMessageTimeout is librdkafka's message.timeout.ms: a record not acknowledged within it fails
	// ("Delivery failed … Message timed out") and kcat exits 1 within the test's time, rather than
	// retrying for the default 300 s. Several times the longest outage these tests cause.
	kcatMessageTimeout = 30 * time.Second
	kcatExitTimeout    = kcatMessageTimeout + 15*time.Second // from closing stdin until kcat exits
	// kcatStdinTimeout bounds a write into kcat's stdin: kcat reads a line as soon as it comes, but its
	// pipe (64 KiB, 512 lines) fills once kcat stops reading, and the write then waits.
	kcatStdinTimeout = 10 * time.Second
)

// kcatDelivered matches kcat's report of a delivered record (kcat.c, dr_msg_cb, verbosity 3).
var kcatDelivered = regexp.MustCompile(`^% Message delivered to partition (-?\d+) \(offset (-?\d+)\)`)

// delivery is one delivery report: where the record was written, and when kcat printed the report.
type delivery struct {
	partition int32
	offset    int64
	at        time.Time
}

// kcatProducer is a running kcat -P and the lines fed to it.
type kcatProducer struct {
	topic   string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	cancel  context.CancelFunc
	feeder  sync.WaitGroup
	done    chan struct{} // closed when kcat has exited and its stderr is read
	changed chan struct{} // capacity 1: signalled on every delivery report
	once    sync.Once

	mu        sync.Mutex
	written   []string             // the lines written to stdin, in order (without the newline)
	writtenAt map[string]time.Time // when each was written
	writeErr  error                // why the feeder stopped early
	reports   []delivery           // in the order kcat printed them
	failures  []string             // stderr lines of failed deliveries and fatal or terminating errors
	notes     []string             // every other stderr line (librdkafka's log, its error callback)
}

// startKcatProducer starts kcat -P on topic with every agent of c as bootstrap broker, and a feeder
// that writes a new line into its stdin every kcatLineTick until finish.
func startKcatProducer(t *testing.T, c *cluster, topic string) *kcatProducer {
	t.Helper()
	kcat := needKcat(t)
	args := []string{"-b", strings.Join(c.brokers(), ","), "-P", "-t", topic,
		"-v", "-v", // verbosity 3: a line per delivery report, failed or not
		"-X", "enable.idempotence=true", "-X", "acks=all",
		// A failure that could leave a gap in the producer's sequence is fatal instead of silent.
		"-X", "enable.gapless.guarantee=true",
		"-X", fmt.Sprintf("message.timeout.ms=%d", kcatMessageTimeout.Milliseconds())}
	p := &kcatProducer{topic: topic, cmd: exec.Command(kcat, args...), done: make(chan struct{}),
		changed: make(chan struct{}, 1), writtenAt: map[string]time.Time{}}
	p.cmd.Env, p.cmd.SysProcAttr = childEnv(), procAttr()
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start kcat: %v", err)
	}
	t.Logf("kcat: pid %d: kcat %s", p.cmd.Process.Pid, strings.Join(args, " "))
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.stderrLine(sc.Text(), time.Now())
		}
		_ = p.cmd.Wait()
		close(p.done)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.feeder.Go(func() { p.feed(ctx) })
	t.Cleanup(func() {
		if !p.exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		p.stopFeeding()
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Logf("kcat: %d lines written, %d delivery reports; failures: %s; last %d other stderr lines:\n%s",
				len(p.written), len(p.reports), sample(p.failures), logTail, strings.Join(p.notes[max(0, len(p.notes)-logTail):], "\n"))
		}
	})
	return p
}

// kcatLine is the i-th input line without its newline: "kcat-0000042" and dots up to kcatLineSize-1.
func kcatLine(i int) string {
	v := fmt.Sprintf("kcat-%07d", i)
	return v + strings.Repeat(".", kcatLineSize-1-len(v))
}

// kcatSeq is the sequence number of a line kcatLine wrote, or -1.
func kcatSeq(v string) int {
	digits, ok := strings.CutPrefix(strings.TrimRight(v, "."), "kcat-")
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || v != kcatLine(n) {
		return -1
	}
	return n
}

// feed writes a line every kcatLineTick until ctx ends or a write fails (kcat exited).
func (p *kcatProducer) feed(ctx context.Context) {
	tick := time.NewTicker(kcatLineTick)
	defer tick.Stop()
	for i := 0; ; i++ {
		v := kcatLine(i)
		// One write of kcatLineSize bytes: at most PIPE_BUF, so atomic; kcat reads it whole.
		_, err := io.WriteString(p.stdin, v+"\n")
		now := time.Now()
		p.mu.Lock()
		if err != nil {
			p.writeErr = err
			p.mu.Unlock()
			return
		}
		p.written = append(p.written, v)
		p.writtenAt[v] = now
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (p *kcatProducer) stderrLine(l string, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := kcatDelivered.FindStringSubmatch(l); m != nil {
		part, _ := strconv.ParseInt(m[1], 10, 32)
		off, _ := strconv.ParseInt(m[2], 10, 64)
		p.reports = append(p.reports, delivery{partition: int32(part), offset: off, at: at})
		select {
		case p.changed <- struct{}{}:
		default:
		}
		return
	}
	// kcat's own failure lines: a failed delivery report, a fatal librdkafka error (enable.gapless.
	// guarantee, a fenced idempotent producer), an error kcat terminates on (all brokers down).
	if strings.HasPrefix(l, "% Delivery failed") || strings.Contains(l, "FATAL") ||
		(strings.HasPrefix(l, "% ERROR:") && strings.HasSuffix(l, ": terminating")) {
		p.failures = append(p.failures, l)
		return
	}
	p.notes = append(p.notes, l)
}

func (p *kcatProducer) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stopFeeding stops the feeder and closes kcat's stdin: at the EOF kcat waits for its outstanding
// delivery reports, then exits. A feeder stuck in a write for kcatStdinTimeout is stopped by the close,
// its write failing.
func (p *kcatProducer) stopFeeding() {
	p.once.Do(func() {
		p.cancel()
		stopped := make(chan struct{})
		go func() {
			p.feeder.Wait()
			close(stopped)
		}()
		select {
		case <-stopped:
		case <-time.After(kcatStdinTimeout):
		}
		_ = p.stdin.Close()
		<-stopped
	})
}

// perPartition counts the delivery reports of each partition.
func (p *kcatProducer) perPartition() map[int32]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := map[int32]int{}
	for _, d := range p.reports {
		n[d.partition]++
	}
	return n
}

// waitDelivered waits until kcat has reported n more deliveries on every partition of the topic than
// now: librdkafka is served by every partition's current leader.
func (p *kcatProducer) waitDelivered(t *testing.T, n int) {
	t.Helper()
	from := p.perPartition()
	deadline := time.After(progressTimeout)
	for {
		now := p.perPartition()
		var behind []string
		for part := range int32(kcatPartitions) {
			if now[part] < from[part]+n {
				behind = append(behind, fmt.Sprintf("%s/%d: %d of %d", p.topic, part, now[part]-from[part], n))
			}
		}
		if len(behind) == 0 {
			return
		}
		p.mu.Lock()
		failures, writeErr := slices.Clone(p.failures), p.writeErr
		p.mu.Unlock()
		if len(failures) > 0 || writeErr != nil {
			t.Fatalf("kcat failed while waiting for %d more deliveries per partition (%s): %s; feeding: %v",
				n, sample(behind), sample(failures), writeErr)
		}
		select {
		case <-p.changed:
		case <-p.done:
			t.Fatalf("kcat exited (%v) while %d more deliveries per partition were awaited: %s",
				p.cmd.ProcessState, n, sample(behind))
		case <-deadline:
			t.Fatalf("kcat not served %d more times on every partition within %v: %s", n, progressTimeout, sample(behind))
		}
	}
}

// finish closes kcat's stdin and checks the whole history: kcat exits 0 with no failed delivery and
// one delivery report per line written, each at its own partition and offset; franz-go, reading the
// topic from offset 0 to its end, finds every line exactly once, nothing else, at dense offsets that
// end where cluster status says, in the order written per partition, and at exactly the positions
// the delivery reports gave. It logs the longest time librdkafka went without a delivery report and
// the longest a line waited for its own, measured from fault.
func (p *kcatProducer) finish(t *testing.T, c *cluster, fault time.Time) {
	t.Helper()
	p.stopFeeding()
	select {
	case <-p.done:
	case <-time.After(kcatExitTimeout):
		t.Fatalf("kcat did not exit within %v of the end of its input", kcatExitTimeout)
	}
	p.mu.Lock()
	written, writtenAt, reports, failures, notes, writeErr := p.written, p.writtenAt, p.reports, p.failures, p.notes, p.writeErr
	p.mu.Unlock()
	if code := p.cmd.ProcessState.ExitCode(); code != 0 || len(failures) > 0 {
		t.Errorf("kcat exited %d; %d failure lines: %s", code, len(failures), sample(failures))
	}
	if writeErr != nil {
		t.Errorf("kcat's input: a write failed (kcat exited, or read nothing for %v): %v", kcatStdinTimeout, writeErr)
	}
	// What reached librdkafka's error callback and log without failing a record: librdkafka retries
	// it (a connection an agent closed on its way out, a refused connection while one restarts).
	var errorCb []string
	for _, l := range notes {
		if strings.HasPrefix(l, "% ERROR:") {
			errorCb = append(errorCb, l)
		}
	}
	t.Logf("kcat: %d lines written, %d delivery reports, %d stderr lines besides them, %d of them from librdkafka's error callback: %s",
		len(written), len(reports), len(notes), len(errorCb), sample(errorCb))

	type position struct {
		partition int32
		offset    int64
	}
	reportAt := map[position]int{} // index of the delivery report of each position
	var doubled []string
	for i, d := range reports {
		k := position{d.partition, d.offset}
		if _, ok := reportAt[k]; ok {
			doubled = append(doubled, fmt.Sprintf("%s/%d@%d", p.topic, d.partition, d.offset))
		}
		reportAt[k] = i
	}
	if len(reports) != len(written) || len(doubled) > 0 {
		t.Errorf("kcat reported %d deliveries for %d lines written; %d positions reported twice: %s",
			len(reports), len(written), len(doubled), sample(doubled))
	}

	broker := ""
	for _, id := range threeAgents {
		if m := c.agents[id]; m != nil && !m.exited() {
			broker = m.kafka
			break
		}
	}
	recs := readAll(t, broker, p.topic)
	checkLog(t, recs, written)
	checkSpread(t, recs, kcatPartitions)
	counts := map[int32]int64{}
	for _, r := range recs {
		counts[r.partition]++
	}
	for _, ps := range c.status(t).Partitions {
		if ps.Topic == p.topic && counts[ps.Partition] != ps.NextOffset {
			t.Errorf("%s/%d: read %d records, cluster status reports next offset %d", ps.Topic, ps.Partition,
				counts[ps.Partition], ps.NextOffset)
		}
	}
	checkWriteOrder(t, p.topic, recs)

	// Each record read must be at a position a delivery report gave (the counts being equal, each
	// report then names a record read), and when its report came tells how long its line waited.
	var unreported []string
	var slowest time.Duration
	var slowestLine string
	for _, r := range recs {
		i, ok := reportAt[position{r.partition, r.offset}]
		if !ok {
			unreported = append(unreported, fmt.Sprintf("%s/%d@%d %s", p.topic, r.partition, r.offset, strings.TrimRight(r.value, ".")))
			continue
		}
		if w, ok := writtenAt[r.value]; ok && reports[i].at.Sub(w) > slowest {
			slowest, slowestLine = reports[i].at.Sub(w), r.value
		}
	}
	if len(unreported) > 0 {
		t.Errorf("%d records read at a position no delivery report gave: %s", len(unreported), sample(unreported))
	}

	// The longest time without any delivery report, while lines kept coming every kcatLineTick.
	var gap time.Duration
	var gapFrom time.Time
	sorted := slices.SortedFunc(slices.Values(reports), func(a, b delivery) int { return a.at.Compare(b.at) })
	for i := 1; i < len(sorted); i++ {
		if d := sorted[i].at.Sub(sorted[i-1].at); d > gap {
			gap, gapFrom = d, sorted[i-1].at
		}
	}
	if slowestLine != "" {
		t.Logf("librdkafka: longest a line waited for its delivery report %v (%s, written %s the first fault); "+
			"longest time without any delivery report %v, from %s the first fault",
			slowest.Round(time.Millisecond), strings.TrimRight(slowestLine, "."), relative(writtenAt[slowestLine].Sub(fault)),
			gap.Round(time.Millisecond), relative(gapFrom.Sub(fault)))
	}
}

// relative says how long before or after an event a time offset d from it is.
func relative(d time.Duration) string {
	if d < 0 {
		return (-d).Round(time.Millisecond).String() + " before"
	}
	return d.Round(time.Millisecond).String() + " after"
}

// checkWriteOrder checks that each partition holds the lines in the order they were written: the
// sequence number grows with the offset. With idempotence librdkafka keeps that order across retries.
func checkWriteOrder(t *testing.T, topic string, recs []record) {
	t.Helper()
	for part, rs := range byPartition(recs) {
		for i := 1; i < len(rs); i++ {
			if prev, cur := kcatSeq(rs[i-1].value), kcatSeq(rs[i].value); cur <= prev {
				t.Errorf("%s/%d: %s at offset %d follows %s at offset %d: not in the order written", topic, part,
					strings.TrimRight(rs[i].value, "."), rs[i].offset, strings.TrimRight(rs[i-1].value, "."), rs[i-1].offset)
				break
			}
		}
	}
}

// startKcatLoaded starts three agents and a 6-partition topic, waits until leadership is balanced,
// then starts kcat and waits until it is served on every partition.
func startKcatLoaded(t *testing.T, topic string) (*cluster, *kcatProducer) {
	t.Helper()
	c := startCluster(t, len(threeAgents))
	createTopic(t, c.brokers()[0], topic, kcatPartitions)
	c.waitBalanced(t, threeAgents...)
	p := startKcatProducer(t, c, topic)
	p.waitDelivered(t, 20)
	return c, p
}

// A rolling restart under a librdkafka producer: each agent in turn gets SIGTERM, exits 0, starts
// again with the same id and addresses, answers /readyz and takes its share back; kcat is served on
// every partition again before the next one goes. No record fails, none is lost or written twice.
func TestKcatProducerRollingRestart(t *testing.T) {
	t.Parallel()
	c, p := startKcatLoaded(t, "kcat-rolling")
	fault := time.Now()
	for _, id := range threeAgents {
		step := time.Now()
		c.agents[id].terminate(t)
		stopped := time.Since(step)
		led := c.waitLed(t, step, id)
		c.restart(t, id)
		ready := time.Since(step)
		c.waitBalanced(t, threeAgents...)
		t.Logf("%s: exited %v after SIGTERM; every partition led by a live agent after %v; ready again after %v; "+
			"balanced after %v", id, stopped.Round(time.Millisecond), led.Round(time.Millisecond),
			ready.Round(time.Millisecond), time.Since(step).Round(time.Millisecond))
		p.waitDelivered(t, 20)
	}
	p.finish(t, c, fault)
}

// kill -9 of the agent leading the most partitions under a librdkafka producer: its partitions take
// no produce until its lease (clusterTTL, 3 s) expires and the others lead them; librdkafka retries
// meanwhile, well within its message timeout. No record fails, none is lost, and, idempotence on, none
// is written twice, even when the victim died after committing a batch it had not yet acknowledged
// and librdkafka sends that batch again to the new leader (whether that happens in a run is chance).
func TestKcatProducerKill9(t *testing.T) {
	t.Parallel()
	c, p := startKcatLoaded(t, "kcat-kill9")
	victim := c.busiest(t, p.topic)
	fault := time.Now()
	victim.kill(t)
	led := c.waitLed(t, fault, victim.id)
	t.Logf("kill -9 of %s: every partition led by a live agent after %v (lease TTL %v)", victim.id,
		led.Round(time.Millisecond), clusterTTL)
	p.waitDelivered(t, 20)
	p.finish(t, c, fault)
}
