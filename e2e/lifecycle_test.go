package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// Lifecycle under faults: merges, retention and GC at test speed while agents are killed.
const (
	lifecycleGrace     = time.Minute      // --gc-grace: the least an agent accepts
	lifecycleReadGrace = 30 * time.Second // --gc-read-grace: likewise
	lifecycleGCEvery   = time.Second      // --gc-interval
	expiringRetention  = 15 * time.Second // retention.ms of the expiring topic
	expiringTopic      = "expiring"
)

var lifecycleFlags = []string{"--maintenance-interval", "20ms", "--gc-interval", lifecycleGCEvery.String(),
	"--gc-grace", lifecycleGrace.String(), "--gc-read-grace", lifecycleReadGrace.String()}

// Three agents merge, expire and collect at test speed under the traffic of the failover tests plus a
// topic with a retention of 15 s. One is killed (-9) while it merges, then the one running GC while
// it does. Afterwards: every acknowledged record of the traffic topics is read exactly once at its
// offset (by the tailing consumer and by kcat from the beginning); the expiring topic's log start has
// moved, and what is read of it from the beginning is at its acknowledged offsets, once, and includes
// every record younger than its retention; and no object older than the GC grace is left that nothing
// references (the killed merges' and flushes' orphans were collected), while every object something
// references is there.
func TestClusterLifecycleKill9(t *testing.T) {
	t.Parallel()
	c := startCluster(t, 0)
	for i, id := range threeAgents {
		c.start(t, id, fmt.Sprintf("z%d", i+1), "127.0.0.1:0", "127.0.0.1:0", lifecycleFlags...)
	}
	tr := startTraffic(t, c)
	tl := startTailer(t, c)
	sh(t, c.brokers()[0], "", "topic", "create", "--partitions", fmt.Sprint(trafficPartitions),
		"--config", fmt.Sprintf("retention.ms=%d", expiringRetention.Milliseconds()), expiringTopic)
	ex := startExpiring(t, c)
	c.waitBalanced(t, threeAgents...)
	tr.waitProgress(t, 100)

	victim := c.busiest(t, trafficTopics...)
	waitCounter(t, victim, "streamhouse_compaction_merges_total", 3)
	fault := time.Now()
	victim.kill(t)
	t.Logf("killed %s (-9) while it merged", victim.id)
	c.waitLed(t, fault, victim.id)
	c.restart(t, victim.id)

	gc := c.gcHolder(t)
	waitCounter(t, gc, "streamhouse_gc_passes_total", 2)
	lastKill := time.Now()
	gc.kill(t)
	t.Logf("killed %s (-9) while it ran GC every %v", gc.id, lifecycleGCEvery)
	c.waitLed(t, lastKill, gc.id)
	c.restart(t, gc.id)
	c.waitBalanced(t, threeAgents...)
	tr.waitProgress(t, 100)

	c.waitStatus(t, "the traffic topics' partitions to hold segments", settleTimeout, func(st clusterStatus) string {
		for _, p := range st.Partitions {
			if slices.Contains(trafficTopics, p.Topic) && p.Segments == 0 {
				return fmt.Sprintf("%s/%d has no segment", p.Topic, p.Partition)
			}
		}
		return ""
	})
	c.finish(t, tr, tl, fault)
	ex.stop()
	ex.check(t, c)
	c.waitNoOldOrphans(t, lastKill)
}

// waitCounter waits until the sum of the series of a counter of m's /metrics has grown by n.
func waitCounter(t *testing.T, m *member, name string, n float64) {
	t.Helper()
	sum := func() float64 {
		s := 0.0
		for _, v := range scrapeMetrics(t, m.http+"/metrics").matching(name) {
			s += v
		}
		return s
	}
	from := sum()
	deadline := time.Now().Add(settleTimeout)
	for sum() < from+n {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s did not grow by %v within %v", m.id, name, n, settleTimeout)
		}
		time.Sleep(statusPoll) // polling the agent's counters
	}
}

// gcHolder is the agent holding the cluster's GC key (its value is the agent's id).
func (c *cluster) gcHolder(t *testing.T) *member {
	t.Helper()
	cl, err := clientv3.New(clientv3.Config{Endpoints: []string{c.dev.etcd}, DialTimeout: cliTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(settleTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
		resp, err := cl.Get(ctx, coord.DefaultPrefix+"gc/leader")
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) > 0 {
			if m, ok := c.agents[string(resp.Kvs[0].Value)]; ok {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no agent holds the GC key")
		}
		time.Sleep(statusPoll) // polling etcd for the key
	}
}

// expiring produces to the expiring topic, remembering when each record was acknowledged and where.
type expiring struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	acked map[string]expiringRecord
	errs  []string
}

type expiringRecord struct {
	partition int32
	offset    int64
	at        time.Time // its timestamp (CreateTime: when it was produced), which retention ages it by
}

func startExpiring(t *testing.T, c *cluster) *expiring {
	t.Helper()
	ex := &expiring{cl: c.client(t, kgo.DefaultProduceTopic(expiringTopic), kgo.RecordPartitioner(kgo.RoundRobinPartitioner())),
		acked: map[string]expiringRecord{}}
	ctx, cancel := context.WithCancel(context.Background())
	ex.cancel = cancel
	t.Cleanup(ex.stop)
	ex.wg.Go(func() {
		tick := time.NewTicker(trafficTick)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			v := fmt.Sprintf("%s.%07d", expiringTopic, seq)
			ex.cl.Produce(context.Background(), &kgo.Record{Value: []byte(v)}, ex.ack)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return ex
}

func (ex *expiring) ack(r *kgo.Record, err error) {
	ex.mu.Lock()
	defer ex.mu.Unlock()
	if err != nil {
		ex.errs = append(ex.errs, fmt.Sprintf("%s: %v", r.Value, err))
		return
	}
	ex.acked[string(r.Value)] = expiringRecord{partition: r.Partition, offset: r.Offset, at: r.Timestamp}
}

// stop ends the producer and waits for what it buffered to be answered.
func (ex *expiring) stop() {
	ex.cancel()
	ex.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), trafficFlush)
	defer cancel()
	_ = ex.cl.Flush(ctx)
}

// check waits until retention has moved every partition's log start, then reads the topic from the
// beginning: every record at its acknowledged offset, once, and none that was not sent; every record
// at or above the log start found after the read among them; and every record below it (retention
// took it) older than the retention by then, by its timestamp, which is what retention ages it by.
// Retention goes on during the read, so a partition whose log start passes its end while it is read
// has nothing left to read.
func (ex *expiring) check(t *testing.T, c *cluster) {
	t.Helper()
	ex.mu.Lock()
	acked, errs := maps.Clone(ex.acked), ex.errs
	ex.mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("%d records of %s failed at the producer: %s", len(errs), expiringTopic, sample(errs))
	}
	var starts, ends map[int32]int64
	c.waitStatus(t, "retention to move every log start of "+expiringTopic, 2*expiringRetention+settleTimeout, func(st clusterStatus) string {
		starts, ends = map[int32]int64{}, map[int32]int64{}
		for _, p := range st.Partitions {
			if p.Topic == expiringTopic {
				starts[p.Partition], ends[p.Partition] = p.LogStart, p.NextOffset
				if p.LogStart == 0 {
					return fmt.Sprintf("%s/%d starts at 0", p.Topic, p.Partition)
				}
			}
		}
		return ""
	})
	read := consumeFrom(t, c, expiringTopic, ends)
	kept := map[int32]int64{} // each partition's log start after the read
	for _, p := range c.status(t).Partitions {
		if p.Topic == expiringTopic {
			kept[p.Partition] = p.LogStart
		}
	}
	after := time.Now() // no later than any retention step that moved the log starts in kept
	var moved, unknown, doubled, missing, early []string
	seen := map[string]bool{}
	for _, r := range read {
		a, ok := acked[r.value]
		switch {
		case !ok:
			unknown = append(unknown, r.value)
		case seen[r.value]:
			doubled = append(doubled, r.value)
		case a.partition != r.partition || a.offset != r.offset:
			moved = append(moved, fmt.Sprintf("%s at %d@%d, acknowledged at %d@%d", r.value, r.partition, r.offset, a.partition, a.offset))
		}
		seen[r.value] = true
	}
	cutoff := after.Add(-expiringRetention) // retention took nothing younger than this
	gone := 0
	for v, a := range acked {
		switch {
		case seen[v]:
		case a.offset >= kept[a.partition]:
			missing = append(missing, fmt.Sprintf("%s (%d@%d, log start %d)", v, a.partition, a.offset, kept[a.partition]))
		case !a.at.Before(cutoff):
			early = append(early, fmt.Sprintf("%s (%d@%d, %v old after the read)", v, a.partition, a.offset, after.Sub(a.at).Round(time.Millisecond)))
		default:
			gone++
		}
	}
	t.Logf("%s: %d acknowledged, %d read from log starts %v, %d gone past retention; log starts after the read %v", expiringTopic, len(acked), len(read), starts, gone, kept)
	if len(moved)+len(unknown)+len(doubled)+len(missing)+len(early) > 0 || gone == 0 {
		t.Errorf("%s: %d read where not acknowledged %s; %d never sent %s; %d read twice %s; %d above the log start not read %s; %d taken by retention too young %s; %d gone",
			expiringTopic, len(moved), sample(moved), len(unknown), sample(unknown), len(doubled), sample(doubled), len(missing), sample(missing), len(early), sample(early), gone)
	}
}

// consumeFrom reads topic from each partition's log start up to ends, or until retention moves the
// log start to its end (nothing is left to read there).
func consumeFrom(t *testing.T, c *cluster, topic string, ends map[int32]int64) []record {
	t.Helper()
	cl := c.client(t, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	adm := kadm.NewClient(cl)
	next := map[int32]int64{}
	errs := map[int32]error{} // the last fetch error of each partition, for a failure's message
	var out []record
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	for {
		if !slices.ContainsFunc(slices.Collect(maps.Keys(ends)), func(p int32) bool { return next[p] < ends[p] }) {
			return out
		}
		poll, stop := context.WithTimeout(ctx, time.Second) // bounded, to look at the log starts between polls
		fs := cl.PollFetches(poll)
		stop()
		if ctx.Err() != nil {
			var where []string
			for _, p := range c.status(t).Partitions {
				if p.Topic == topic && next[p.Partition] < ends[p.Partition] {
					where = append(where, fmt.Sprintf("%v: log start %d, next offset %d, %d segments, %d tail entries; last fetch error: %v",
						p, p.LogStart, p.NextOffset, p.Segments, p.Tail, errs[p.Partition]))
				}
			}
			t.Fatalf("reading %s: not at the end offsets %v within %v: at %v; now %s", topic, ends, readTimeout, next, strings.Join(where, "; "))
		}
		fs.EachError(func(_ string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				errs[p] = err
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, record{partition: r.Partition, offset: r.Offset, key: topic, value: string(r.Value)})
			next[r.Partition] = max(next[r.Partition], r.Offset+1)
		})
		starts, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			continue // asked again after the next poll
		}
		starts.Each(func(o kadm.ListedOffset) {
			if o.Err == nil && o.Offset >= ends[o.Partition] && next[o.Partition] < ends[o.Partition] {
				t.Logf("%s/%d: retention moved the log start to %d, its end, while it was read from %d (last fetch error: %v)",
					topic, o.Partition, o.Offset, next[o.Partition], errs[o.Partition])
				next[o.Partition] = o.Offset
			}
		})
	}
}

// waitNoOldOrphans waits until objects written before since (a kill: its unfinished merges and
// flushes are orphans) are old enough for GC, then until every object older than that is referenced by
// the index; and it checks, each time, that every object the index references exists.
func (c *cluster) waitNoOldOrphans(t *testing.T, since time.Time) {
	t.Helper()
	ctx := context.Background()
	cl, err := coord.Connect(ctx, coord.Config{Endpoints: []string{c.dev.etcd}, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	view := cl.NewCache(hclog.NewNullLogger())
	vctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = view.Run(vctx) })
	t.Cleanup(func() { stop(); wg.Wait() })
	store, err := segstore.NewS3(ctx, segstore.S3Config{Endpoint: c.dev.s3, Bucket: c.dev.bucket, Region: segstore.DefaultS3Region,
		PathStyle: true, AccessKeyID: "streamhouse", SecretAccessKey: "streamhouse"})
	if err != nil {
		t.Fatal(err)
	}
	<-view.Ready()
	limit := lifecycleGrace + lifecycleReadGrace + 5*lifecycleGCEvery
	// What the index references at a revision: its view caught up with etcd.
	refsNow := func() map[string]int {
		rev, err := cl.Revision(ctx)
		if err == nil {
			err = view.WaitRevision(ctx, rev)
		}
		if err != nil {
			t.Fatal(err)
		}
		return view.ReferencedObjects()
	}
	deadline := since.Add(limit + settleTimeout)
	for {
		// Referenced before the listing: must be listed (GC spares an object for the read grace after
		// its last reference goes). Referenced after it: covers whatever was committed meanwhile.
		before := refsNow()
		keys, err := store.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		refs := refsNow()
		listed := map[string]bool{}
		var old []string
		for _, k := range keys {
			listed[k] = true
			if at, ok := segstore.ObjectTime(k); ok && time.Since(at) > limit {
				if _, ok := refs[k]; !ok {
					old = append(old, fmt.Sprintf("%s (%v old)", k, time.Since(at).Round(time.Second)))
				}
			}
		}
		var lost []string
		for k := range before {
			if !listed[k] {
				lost = append(lost, k)
			}
		}
		if len(lost) > 0 {
			t.Fatalf("%d referenced objects are gone from the bucket: %s", len(lost), sample(lost))
		}
		if len(old) == 0 && time.Since(since) > limit {
			t.Logf("bucket: %d objects, %d referenced; none older than %v unreferenced", len(keys), len(refs), limit)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("unreferenced objects older than %v remain: %s", limit, sample(old))
		}
		time.Sleep(lifecycleGCEvery) // GC passes run at this interval
	}
}
