package e2e

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Traffic of the multi-agent tests: trafficTopics × trafficPartitions, one record per partition every
// trafficTick (1,200 records/s), from a franz-go idempotent producer (acks=all, kgo's default, which
// retries inside the client without limit); a franz-go consumer tails every partition meanwhile.
const (
	trafficPartitions = 6
	trafficTick       = 10 * time.Millisecond
	trafficFlush      = 60 * time.Second // for what is buffered when the producer stops
)

var trafficTopics = []string{"orders", "payments"}

// tp is a topic partition.
type tp struct {
	topic     string
	partition int32
}

func (p tp) String() string { return fmt.Sprintf("%s/%d", p.topic, p.partition) }

// traffic is a producer that writes unique values ("topic.partition.sequence", or
// "topic.partition.<tag>sequence") to every partition at a steady rate until stopped, remembering
// every acknowledgement and every error, and measuring the longest time each partition went without
// one.
type traffic struct {
	cl      *kgo.Client
	tag     string        // of this producer's values
	tick    time.Duration // between two records to one partition
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	changed chan struct{} // capacity 1: signalled on every acknowledgement
	once    sync.Once

	mu       sync.Mutex
	sent     int
	acked    map[string]record
	errs     []string
	count    map[tp]int           // acknowledgements per partition
	last     map[tp]time.Time     // of the latest acknowledgement
	gap      map[tp]time.Duration // longest time between two acknowledgements
	gapSince map[tp]time.Time     // when the longest gap began
}

// startTraffic creates the topics and starts producing to them.
func startTraffic(t *testing.T, c *cluster) *traffic {
	t.Helper()
	for _, topic := range trafficTopics {
		createTopic(t, c.brokers()[0], topic, trafficPartitions)
	}
	return c.produceTraffic(t, "", trafficTick)
}

// produceTraffic starts a producer of the traffic topics, which must exist: one record to every
// partition every tick, through a client with options opts. Producers that run together need distinct
// tags, which must not end in a digit (checkOrder reads the sequence after the tag).
func (c *cluster) produceTraffic(t *testing.T, tag string, tick time.Duration, opts ...kgo.Opt) *traffic {
	t.Helper()
	cl := c.client(t, append([]kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(1 << 20)}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{cl: cl, tag: tag, tick: tick, cancel: cancel, changed: make(chan struct{}, 1), acked: map[string]record{},
		count: map[tp]int{}, last: map[tp]time.Time{}, gap: map[tp]time.Duration{}, gapSince: map[tp]time.Time{}}
	t.Cleanup(func() { tr.stop(t) })
	tr.wg.Go(func() { tr.run(ctx) })
	return tr
}

func (tr *traffic) run(ctx context.Context) {
	tick := time.NewTicker(tr.tick)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		for _, topic := range trafficTopics {
			for p := range int32(trafficPartitions) {
				r := &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s.%d.%s%07d", topic, p, tr.tag, seq)}
				tr.mu.Lock()
				tr.sent++
				tr.mu.Unlock()
				tr.cl.Produce(context.Background(), r, tr.ack)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (tr *traffic) ack(r *kgo.Record, err error) {
	now := time.Now()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if err != nil {
		tr.errs = append(tr.errs, fmt.Sprintf("%s: %v", r.Value, err))
		return
	}
	k := tp{r.Topic, r.Partition}
	tr.acked[string(r.Value)] = record{partition: r.Partition, offset: r.Offset, key: r.Topic, value: string(r.Value)}
	tr.count[k]++
	if last, ok := tr.last[k]; ok && now.Sub(last) > tr.gap[k] {
		tr.gap[k], tr.gapSince[k] = now.Sub(last), last
	}
	tr.last[k] = now
	select {
	case tr.changed <- struct{}{}:
	default:
	}
}

// add records an acknowledgement that another producer received, so that the checks expect it.
func (tr *traffic) add(r *kgo.Record) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.acked[string(r.Value)] = record{partition: r.Partition, offset: r.Offset, key: r.Topic, value: string(r.Value)}
}

// acknowledged is a copy of the acknowledgements: value → where.
func (tr *traffic) acknowledged() map[string]record {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return maps.Clone(tr.acked)
}

// counts is a copy of the acknowledgements per partition.
func (tr *traffic) counts() map[tp]int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return maps.Clone(tr.count)
}

// waitProgress waits until every partition has n more acknowledgements than now: the producer is
// served on all of them.
func (tr *traffic) waitProgress(t *testing.T, n int) {
	t.Helper()
	from := tr.counts()
	deadline := time.After(progressTimeout)
	for {
		now := tr.counts()
		var behind []string
		for _, topic := range trafficTopics {
			for p := range int32(trafficPartitions) {
				k := tp{topic, p}
				if now[k] < from[k]+n {
					behind = append(behind, fmt.Sprintf("%v: %d of %d", k, now[k]-from[k], n))
				}
			}
		}
		if len(behind) == 0 {
			return
		}
		select {
		case <-tr.changed:
		case <-deadline:
			t.Fatalf("producer not acknowledged %d more times on every partition within %v: %s; errors: %s",
				n, progressTimeout, sample(behind), sample(tr.errors()))
		}
	}
}

func (tr *traffic) errors() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return slices.Clone(tr.errs)
}

// stop ends producing and waits, within trafficFlush, until every record is acknowledged or failed.
func (tr *traffic) stop(t *testing.T) {
	t.Helper()
	tr.once.Do(func() {
		tr.cancel()
		tr.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), trafficFlush)
		defer cancel()
		if err := tr.cl.Flush(ctx); err != nil {
			t.Errorf("producer: flush: %v", err)
		}
	})
}

// logGaps logs the longest time each partition went without an acknowledgement — what the producer
// saw of the faults, the normal ~flush-interval latency included.
func (tr *traffic) logGaps(t *testing.T, fault time.Time) {
	t.Helper()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var worst tp
	var parts []string
	for _, k := range slices.SortedFunc(maps.Keys(tr.gap), func(a, b tp) int { return strings.Compare(a.String(), b.String()) }) {
		parts = append(parts, fmt.Sprintf("%v %v", k, tr.gap[k].Round(time.Millisecond)))
		if tr.gap[k] > tr.gap[worst] {
			worst = k
		}
	}
	t.Logf("producer: %d records sent, %d acknowledged, %d failed; longest gap between acknowledgements: %v on %v, "+
		"from %v after the first fault; per partition: %s", tr.sent, len(tr.acked), len(tr.errs),
		tr.gap[worst].Round(time.Millisecond), worst, tr.gapSince[worst].Sub(fault).Round(time.Millisecond), strings.Join(parts, ", "))
}

// tailer is a franz-go consumer assigned every partition of the traffic topics from offset 0 (no
// group), reading while the faults happen. It keeps what it read at each offset and reports a
// second, different value at an offset: a record that became visible and then was replaced.
type tailer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	at      map[tp]map[int64]string
	changes []string
	errs    []string
	next    map[tp]int64
	changed chan struct{}
}

func startTailer(t *testing.T, c *cluster, opts ...kgo.Opt) *tailer {
	t.Helper()
	starts := map[string]map[int32]kgo.Offset{}
	for _, topic := range trafficTopics {
		starts[topic] = map[int32]kgo.Offset{}
		for p := range int32(trafficPartitions) {
			starts[topic][p] = kgo.NewOffset().At(0)
		}
	}
	cl := c.client(t, append([]kgo.Opt{kgo.ConsumePartitions(starts), kgo.FetchMaxWait(200 * time.Millisecond)}, opts...)...)
	ctx, cancel := context.WithCancel(context.Background())
	tl := &tailer{cl: cl, cancel: cancel, at: map[tp]map[int64]string{}, next: map[tp]int64{}, changed: make(chan struct{}, 1)}
	t.Cleanup(tl.stop)
	tl.wg.Go(func() { tl.run(ctx) })
	return tl
}

func (tl *tailer) run(ctx context.Context) {
	for ctx.Err() == nil {
		fs := tl.cl.PollFetches(ctx)
		tl.mu.Lock()
		fs.EachError(func(topic string, p int32, err error) {
			if ctx.Err() == nil {
				tl.errs = append(tl.errs, fmt.Sprintf("%s/%d: %v", topic, p, err))
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			if tl.at[k] == nil {
				tl.at[k] = map[int64]string{}
			}
			if old, ok := tl.at[k][r.Offset]; ok && old != string(r.Value) {
				tl.changes = append(tl.changes, fmt.Sprintf("%v offset %d read as %s, then as %s", k, r.Offset, old, r.Value))
			}
			tl.at[k][r.Offset] = string(r.Value)
			tl.next[k] = max(tl.next[k], r.Offset+1)
		})
		tl.mu.Unlock()
		select {
		case tl.changed <- struct{}{}:
		default:
		}
	}
}

func (tl *tailer) stop() {
	tl.cancel()
	tl.wg.Wait()
}

// waitEnds waits until the tailer has read every partition up to its end offset.
func (tl *tailer) waitEnds(t *testing.T, ends map[tp]int64) {
	t.Helper()
	deadline := time.After(readTimeout)
	for {
		tl.mu.Lock()
		var behind []string
		for k, end := range ends {
			if tl.next[k] < end {
				behind = append(behind, fmt.Sprintf("%v at %d of %d", k, tl.next[k], end))
			}
		}
		tl.mu.Unlock()
		if len(behind) == 0 {
			return
		}
		select {
		case <-tl.changed:
		case <-deadline:
			t.Fatalf("the tailing consumer did not reach the end offsets within %v: %s", readTimeout, sample(behind))
		}
	}
}

// records is everything the tailer read, one record per offset (key: the topic).
func (tl *tailer) records() []record {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var recs []record
	for k, offs := range tl.at {
		for o, v := range offs {
			recs = append(recs, record{partition: k.partition, offset: o, key: k.topic, value: v})
		}
	}
	return recs
}

// finish stops the traffic and checks the history: no error reached the producer; the tailing
// consumer, and then kcat reading every topic from the beginning, read each partition densely up to
// the end offset that cluster status reports, with every acknowledged record exactly once at its
// acknowledged offset, no value at two offsets, no offset read with two values, the producer's order
// kept per partition and nothing that was not sent. It logs the longest acknowledgement gaps.
func (c *cluster) finish(t *testing.T, tr *traffic, tl *tailer, fault time.Time) {
	t.Helper()
	tr.stop(t)
	tr.logGaps(t, fault)
	if errs := tr.errors(); len(errs) > 0 {
		t.Errorf("%d records failed at the producer (kgo retries retriable errors itself): %s", len(errs), sample(errs))
	}
	ends := map[tp]int64{}
	for _, p := range c.status(t).Partitions {
		if slices.Contains(trafficTopics, p.Topic) {
			ends[tp{p.Topic, p.Partition}] = p.NextOffset
		}
	}
	acked := tr.acknowledged()
	tl.check(t, "kgo consumer", acked, ends)

	kcat := needKcat(t)
	var kcatRecs []record
	for _, topic := range trafficTopics {
		for _, r := range kcatConsume(t, kcat, strings.Join(c.brokers(), ","), topic) {
			r.key = topic
			kcatRecs = append(kcatRecs, r)
		}
	}
	checkHistory(t, "kcat", kcatRecs, acked, ends)
}

// check waits until the tailer has read every partition up to ends, stops it and checks what it read
// against the acknowledgements (checkHistory); who names it in failures.
func (tl *tailer) check(t *testing.T, who string, acked map[string]record, ends map[tp]int64) {
	t.Helper()
	tl.waitEnds(t, ends)
	tl.stop()
	tl.mu.Lock()
	changes, fetchErrs := tl.changes, tl.errs
	tl.mu.Unlock()
	if len(changes) > 0 {
		t.Errorf("%s: %d offsets were read with two different values: %s", who, len(changes), sample(changes))
	}
	if len(fetchErrs) > 0 {
		t.Logf("%s saw %d fetch errors (kgo retries them): %s", who, len(fetchErrs), sample(fetchErrs))
	}
	checkHistory(t, who, tl.records(), acked, ends)
}

// checkHistory checks what one consumer read (record.key holds the topic) against the producers'
// acknowledgements and the end offsets.
func checkHistory(t *testing.T, who string, recs []record, acked map[string]record, ends map[tp]int64) {
	t.Helper()
	byTopic := map[string][]record{}
	where := map[string][]string{}
	for _, r := range recs {
		byTopic[r.key] = append(byTopic[r.key], r)
		where[r.value] = append(where[r.value], fmt.Sprintf("%s/%d@%d", r.key, r.partition, r.offset))
	}
	for topic, rs := range byTopic {
		checkOffsets(t, rs, nil)
		checkOrder(t, topic, rs)
	}
	for k, end := range ends {
		n := 0
		for _, r := range byTopic[k.topic] {
			if r.partition == k.partition {
				n++
			}
		}
		if int64(n) != end {
			t.Errorf("%s: read %d records of %v, whose end offset is %d", who, n, k, end)
		}
	}
	var missing, doubled, moved, unknown []string
	for v, at := range where {
		a, ok := acked[v]
		switch {
		case len(at) > 1:
			doubled = append(doubled, fmt.Sprintf("%s at %v", v, at))
		case !ok:
			unknown = append(unknown, v+" at "+at[0])
		case at[0] != fmt.Sprintf("%s/%d@%d", a.key, a.partition, a.offset):
			moved = append(moved, fmt.Sprintf("%s read at %s, acknowledged at %s/%d@%d", v, at[0], a.key, a.partition, a.offset))
		}
	}
	for v := range acked {
		if len(where[v]) == 0 {
			missing = append(missing, v)
		}
	}
	slices.Sort(missing)
	if len(missing)+len(doubled)+len(moved)+len(unknown) > 0 {
		t.Errorf("%s read %d records, %d acknowledged: %d acknowledged missing %s; %d at two offsets %s; "+
			"%d not where acknowledged %s; %d never acknowledged %s", who, len(recs), len(acked), len(missing),
			sample(missing), len(doubled), sample(doubled), len(moved), sample(moved), len(unknown), sample(unknown))
	}
}

// byPartition groups records by partition, each partition's in offset order.
func byPartition(recs []record) map[int32][]record {
	out := map[int32][]record{}
	for _, r := range recs {
		out[r.partition] = append(out[r.partition], r)
	}
	for _, rs := range out {
		slices.SortFunc(rs, func(a, b record) int { return cmp.Compare(a.offset, b.offset) })
	}
	return out
}

// checkOrder checks that each partition holds each producer's records in the order it sent them: the
// sequence in the value ("topic.partition.[tag]sequence", one tag per producer) grows with the offset.
func checkOrder(t *testing.T, topic string, recs []record) {
	t.Helper()
	for p, rs := range byPartition(recs) {
		prefix := fmt.Sprintf("%s.%d.", topic, p)
		prev := map[string]int{} // per tag
		for _, r := range rs {
			rest, ok := strings.CutPrefix(r.value, prefix)
			tag := strings.TrimRight(rest, "0123456789")
			seq, err := strconv.Atoi(rest[len(tag):])
			if !ok || err != nil {
				t.Errorf("%s/%d@%d holds %q, not a value sent to that partition", topic, p, r.offset, r.value)
				return
			}
			if last, ok := prev[tag]; ok && seq <= last {
				t.Errorf("%s/%d: %s at offset %d comes after sequence %d of its producer: reordered", topic, p, r.value, r.offset, last)
				return
			}
			prev[tag] = seq
		}
	}
}
