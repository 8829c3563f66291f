package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Consumer groups mixing clients (librdkafka through kcat -G, franz-go, sarama) while members come and
// go and the group's coordinator is killed. What every test checks at the end is Kafka's delivery
// guarantee for a group, at least once with re-delivery only from the last commit:
//
//   - every record the producer had acknowledged is processed by some member, at its acknowledged
//     partition and offset;
//   - a member that gets a partition starts exactly at the group's committed offset, so a record is
//     processed again only if it lies at or after the last commit made before that member got the
//     partition — never below a commit that its predecessors made;
//   - the group's committed offsets, polled all along, never go back;
//   - once every member has left, the committed offsets are the log end offsets.
//
// What a member "committed" is known exactly where the client tells: the franz-go members commit
// synchronously after each poll and when their partitions are revoked, and see each partition's
// outcome; kcat runs with librdkafka's cgrp debug log, which names the offsets it commits when its
// partitions are revoked (librdkafka 2.0's kcat commits only then, and when it closes) and the
// commit's outcome. sarama does not tell, so its commits are known as the polls see them.

const (
	churnPartitions = 6
	churnTick       = 20 * time.Millisecond // one record per partition per tick: 300 records/s
	commitPoll      = 50 * time.Millisecond
	heartbeat       = 500 * time.Millisecond // of every member: a rebalance reaches them quickly
)

// groupRead is one record as a member processed it.
type groupRead struct {
	member    string
	partition int32
	offset    int64
	value     string
	at        time.Time // when the test saw it (for kcat, when its line arrived)
}

// groupCommit is a committed offset (the next to read) that a member's client reported as committed,
// or that a poll of the group's offsets saw (member "").
type groupCommit struct {
	member    string
	partition int32
	offset    int64
	at        time.Time
	closing   bool // made by a kcat member after the test sent it SIGTERM (see groupLedger.check)
}

// groupLedger collects what the members of one group processed and committed.
type groupLedger struct {
	mu       sync.Mutex
	reads    []groupRead
	commits  []groupCommit // reported by the members themselves
	polled   []groupCommit // seen by polling the group's offsets
	last     map[int32]int64
	problems []string // found while running: committed offsets going back
	failed   []string // commits a member's client reported as failed (allowed: they only weaken its bound)
	changed  chan struct{}
}

func newGroupLedger() *groupLedger {
	return &groupLedger{last: map[int32]int64{}, changed: make(chan struct{}, 1)}
}

func (l *groupLedger) signal() {
	select {
	case l.changed <- struct{}{}:
	default:
	}
}

func (l *groupLedger) read(member string, partition int32, offset int64, value string, at time.Time) {
	l.mu.Lock()
	l.reads = append(l.reads, groupRead{member, partition, offset, value, at})
	l.mu.Unlock()
	l.signal()
}

func (l *groupLedger) commit(member string, partition int32, offset int64, at time.Time, closing bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.commits = append(l.commits, groupCommit{member, partition, offset, at, closing})
}

func (l *groupLedger) commitFailed(member, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed = append(l.failed, member+": "+what)
}

func (l *groupLedger) problem(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.problems = append(l.problems, p)
}

// processedAgain lists the records that a member whose name starts with prefix processed and that
// any member processed after that.
func (l *groupLedger) processedAgain(prefix string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	by := map[string]string{}
	var again []string
	for _, r := range l.reads {
		if m, ok := by[r.value]; ok {
			again = append(again, fmt.Sprintf("%s by %s, then by %s", r.value, m, r.member))
		} else if strings.HasPrefix(r.member, prefix) {
			by[r.value] = r.member
		}
	}
	return again
}

// observe records a committed offset that a poll saw; it must not be below one seen before.
func (l *groupLedger) observe(partition int32, offset int64, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if last, ok := l.last[partition]; ok && offset < last {
		l.problems = append(l.problems, fmt.Sprintf("partition %d: committed offset went back from %d to %d", partition, last, offset))
	}
	l.last[partition] = max(l.last[partition], offset)
	l.polled = append(l.polled, groupCommit{partition: partition, offset: offset, at: at})
}

// watchCommits polls the group's committed offsets of topic until the test ends.
func (l *groupLedger) watchCommits(t *testing.T, adm *renewingAdmin, group, topic string) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		tick := time.NewTicker(commitPoll)
		defer tick.Stop()
		for ctx.Err() == nil {
			l.pollCommits(ctx, adm, group, topic)
			select {
			case <-ctx.Done():
			case <-tick.C:
			}
		}
	})
}

// pollCommits observes the group's committed offsets of topic once and returns them; errors (a
// coordinator moving) return nil.
func (l *groupLedger) pollCommits(ctx context.Context, adm *renewingAdmin, group, topic string) map[int32]int64 {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	offs, err := adm.get().FetchOffsets(ctx, group)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		adm.renew()
		return nil
	}
	at := time.Now()
	got := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At >= 0 {
			l.observe(o.Partition, o.At, at)
			got[o.Partition] = o.At
		}
	})
	return got
}

// count is how many reads member has made ("" for all members).
func (l *groupLedger) count(member string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if member == "" {
		return len(l.reads)
	}
	n := 0
	for _, r := range l.reads {
		if r.member == member {
			n++
		}
	}
	return n
}

// missing lists the acknowledged values that no member has processed yet.
func (l *groupLedger) missing(acked map[string]record) []string {
	l.mu.Lock()
	reads, _ := l.withDropped(acked)
	l.mu.Unlock()
	seen := map[string]bool{}
	for _, r := range reads {
		seen[r.value] = true
	}
	var out []string
	for v := range acked {
		if !seen[v] {
			out = append(out, v)
		}
	}
	slices.Sort(out)
	return out
}

// waitFor waits until cond holds, checking whenever a member processed something (and at least
// every commitPoll), failing after timeout with why().
func (l *groupLedger) waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, why func() string) {
	t.Helper()
	deadline := time.After(timeout)
	tick := time.NewTicker(commitPoll)
	defer tick.Stop()
	for !cond() {
		select {
		case <-l.changed:
		case <-tick.C:
		case <-deadline:
			t.Fatalf("%s: not within %v: %s", what, timeout, why())
		}
	}
}

// waitReads waits until member has processed n more records than it had.
func (l *groupLedger) waitReads(t *testing.T, member string, n int) {
	t.Helper()
	from := l.count(member)
	l.waitFor(t, fmt.Sprintf("%s processes %d records", member, n), groupTimeout,
		func() bool { return l.count(member) >= from+n },
		func() string { return fmt.Sprintf("%d processed", l.count(member)-from) })
}

// waitAll waits until every acknowledged record has been processed.
func (l *groupLedger) waitAll(t *testing.T, acked map[string]record) {
	t.Helper()
	l.waitFor(t, fmt.Sprintf("the group processes all %d acknowledged records", len(acked)), groupTimeout,
		func() bool { return len(l.missing(acked)) == 0 },
		func() string {
			m := l.missing(acked)
			return fmt.Sprintf("%d never processed: %s", len(m), sample(m))
		})
}

// session is one member's run of consecutive offsets of a partition: what it processed from one
// start position on.
type session struct {
	member     string
	start, end int64 // first and last offset
	first      time.Time
	commits    []int64 // commits the member reported while in this session
}

// withDropped is what the members processed, with the records kcat dropped when the test terminated
// it. Its caller holds l.mu.
//
// kcat drops the one record that librdkafka handed it when SIGTERM came (kcat.c: consume_cb returns
// at once when !conf.run), yet librdkafka has stored its offset, and commits it when kcat closes:
// the record was delivered to the client, which dropped it. Such a commit is one past the last
// record the member printed on that partition; the record in between counts as processed, once
// per member that the test terminated.
func (l *groupLedger) withDropped(acked map[string]record) (reads []groupRead, dropped []string) {
	reads = slices.Clone(l.reads)
	dropFor := map[string]bool{}
	for _, c := range l.commits {
		if !c.closing || dropFor[c.member] {
			continue
		}
		last, i := int64(-1), -1
		for j, r := range reads {
			if r.member == c.member && r.partition == c.partition && r.offset >= last {
				last, i = r.offset, j
			}
		}
		if i >= 0 && last == c.offset-2 {
			for v, a := range acked {
				if a.partition == c.partition && a.offset == c.offset-1 {
					r := reads[i]
					r.offset, r.value = c.offset-1, v
					reads = slices.Insert(reads, i+1, r)
					dropped = append(dropped, fmt.Sprintf("%s %d@%d", c.member, c.partition, c.offset-1))
					dropFor[c.member] = true
				}
			}
		}
	}
	return reads, dropped
}

// check returns every way the history breaks the guarantee (see the top of this file), and a summary.
func (l *groupLedger) check(acked map[string]record) (problems []string, summary string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	problems = slices.Clone(l.problems)
	reads, dropped := l.withDropped(acked)

	// What was processed is what was acknowledged, where it was acknowledged.
	at := map[int32]map[int64]string{}
	for v, r := range acked {
		if at[r.partition] == nil {
			at[r.partition] = map[int64]string{}
		}
		at[r.partition][r.offset] = v
	}
	times := map[string]int{}
	var wrong []string
	for _, r := range reads {
		times[r.value]++
		if want, ok := at[r.partition][r.offset]; !ok || want != r.value {
			wrong = append(wrong, fmt.Sprintf("%s processed %s at %d@%d, where %q was acknowledged", r.member, r.value, r.partition, r.offset, want))
		}
	}
	if len(wrong) > 0 {
		problems = append(problems, fmt.Sprintf("%d records processed that were not acknowledged there: %s", len(wrong), sample(wrong)))
	}
	var missing []string
	for v := range acked {
		if times[v] == 0 {
			missing = append(missing, v)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		var near []string
		for _, v := range missing[:min(3, len(missing))] {
			near = append(near, l.around(reads, acked[v]))
		}
		problems = append(problems, fmt.Sprintf("%d of %d acknowledged records never processed (lost): %s; %s", len(missing), len(acked),
			sample(missing), strings.Join(near, "; ")))
	}

	// Sessions per partition, in the order they began.
	byPartition := map[int32][]*session{}
	current := map[string]*session{} // member/partition → its latest session
	for _, r := range reads {
		k := fmt.Sprintf("%s/%d", r.member, r.partition)
		s := current[k]
		if s == nil || r.offset != s.end+1 {
			s = &session{member: r.member, start: r.offset, end: r.offset, first: r.at}
			current[k] = s
			byPartition[r.partition] = append(byPartition[r.partition], s)
		}
		s.end = r.offset
	}
	for _, ss := range byPartition {
		slices.SortStableFunc(ss, func(a, b *session) int { return a.first.Compare(b.first) })
	}
	// A member commits only what it processed: each commit it reports (offset C) belongs to its latest
	// session of that partition that had begun and had processed C-1.
	for _, c := range l.commits {
		var owner *session
		for _, s := range byPartition[c.partition] {
			if s.member == c.member && s.start <= c.offset-1 && c.offset-1 <= s.end && !s.first.After(c.at) {
				owner = s
			}
		}
		if owner == nil {
			problems = append(problems, fmt.Sprintf("%s committed %d@%d without having processed offset %d", c.member, c.partition, c.offset, c.offset-1))
			continue
		}
		owner.commits = append(owner.commits, c.offset)
	}
	// Each session starts at the group's committed offset: not below any commit its predecessors
	// reported, nor below any committed offset a poll saw before it began.
	sessions, dups, below := 0, 0, 0
	for p, ss := range byPartition {
		bound, by := int64(0), "nothing"
		for _, s := range ss {
			sessions++
			for _, pc := range l.polled {
				if pc.partition == p && pc.at.Before(s.first) && pc.offset > bound {
					bound, by = pc.offset, fmt.Sprintf("a poll of the group's offsets %v before", s.first.Sub(pc.at).Round(time.Millisecond))
				}
			}
			if s.start < bound {
				below++
				problems = append(problems, fmt.Sprintf("partition %d: %s processed from offset %d (to %d), below offset %d committed by %s: "+
					"records after the last commit re-delivered", p, s.member, s.start, s.end, bound, by))
			}
			for _, c := range s.commits {
				if c > bound {
					bound, by = c, s.member
				}
			}
		}
	}
	for _, n := range times {
		if n > 1 {
			dups++
		}
	}
	summary = fmt.Sprintf("%d records processed (%d acknowledged), %d of them more than once; %d sessions; %d commits reported by members, "+
		"%d failed; %d polls of the committed offsets", len(l.reads), len(acked), dups, sessions, len(l.commits), len(l.failed), len(l.polled))
	if len(l.failed) > 0 {
		summary += "; failed commits: " + sample(l.failed)
	}
	if len(dropped) > 0 {
		summary += "; dropped by kcat on SIGTERM after librdkafka stored their offsets: " + sample(dropped)
	}
	return problems, summary
}

// around describes who processed and committed around the record r: for a failure's message.
func (l *groupLedger) around(reads []groupRead, r record) string {
	var out []string
	for _, x := range reads {
		if x.partition == r.partition && x.offset >= r.offset-1 && x.offset <= r.offset+1 {
			out = append(out, fmt.Sprintf("%s processed %d", x.member, x.offset))
		}
	}
	for _, c := range l.commits {
		if c.partition == r.partition && c.offset >= r.offset-1 && c.offset <= r.offset+2 {
			out = append(out, fmt.Sprintf("%s committed %d", c.member, c.offset))
		}
	}
	for _, c := range l.polled {
		if c.partition == r.partition && c.offset >= r.offset-1 && c.offset <= r.offset+2 {
			out = append(out, fmt.Sprintf("a poll saw %d committed", c.offset))
			break
		}
	}
	return fmt.Sprintf("around %d@%d: %s", r.partition, r.offset, strings.Join(out, ", "))
}

// finishGroup checks a group's history once the producer has stopped: every acknowledged record is
// processed; then every member leaves and the committed offsets must be the end offsets; then the
// guarantee (groupLedger.check).
func finishGroup(t *testing.T, adm *renewingAdmin, l *groupLedger, group, topic string, acked map[string]record, members ...groupMember) {
	t.Helper()
	l.waitAll(t, acked)
	for _, m := range members {
		m.leave(t)
	}
	ends := map[int32]int64{}
	for _, r := range acked {
		ends[r.partition] = max(ends[r.partition], r.offset+1)
	}
	var got map[int32]int64
	l.waitFor(t, "the committed offsets reach the end offsets once every member left", groupTimeout,
		func() bool {
			got = l.pollCommits(context.Background(), adm, group, topic)
			return maps.Equal(got, ends)
		},
		func() string { return fmt.Sprintf("committed %v, end offsets %v", got, ends) })
	problems, summary := l.check(acked)
	t.Log(summary)
	for _, p := range problems {
		t.Error(p)
	}
}

// groupMember is a member of a consumer group that the test can ask to leave gracefully.
type groupMember interface {
	leave(t *testing.T)
}

// groupProducer writes one unique value ("topic.partition.sequence") to every partition each
// churnTick until stopped, keeping every acknowledgement.
type groupProducer struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once

	mu    sync.Mutex
	acked map[string]record
	count map[int32]int
	errs  []string
}

func startGroupProducer(t *testing.T, c *cluster, topic string, partitions int) *groupProducer {
	t.Helper()
	gp := &groupProducer{cl: c.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MaxBufferedRecords(1<<20)),
		acked: map[string]record{}, count: map[int32]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	gp.cancel = cancel
	t.Cleanup(func() { gp.stop(t) })
	gp.wg.Go(func() {
		tick := time.NewTicker(churnTick)
		defer tick.Stop()
		for seq := 0; ; seq++ {
			for p := range int32(partitions) {
				gp.cl.Produce(context.Background(), &kgo.Record{Topic: topic, Partition: p, Value: fmt.Appendf(nil, "%s.%d.%06d", topic, p, seq)},
					func(r *kgo.Record, err error) {
						gp.mu.Lock()
						defer gp.mu.Unlock()
						if err != nil {
							gp.errs = append(gp.errs, fmt.Sprintf("%s: %v", r.Value, err))
							return
						}
						gp.acked[string(r.Value)] = record{partition: r.Partition, offset: r.Offset, value: string(r.Value)}
						gp.count[r.Partition]++
					})
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	return gp
}

// waitProgress waits until every partition has n more acknowledgements than now.
func (gp *groupProducer) waitProgress(t *testing.T, n, partitions int) {
	t.Helper()
	counts := func() map[int32]int {
		gp.mu.Lock()
		defer gp.mu.Unlock()
		return maps.Clone(gp.count)
	}
	from := counts()
	deadline := time.Now().Add(progressTimeout)
	tick := time.NewTicker(commitPoll)
	defer tick.Stop()
	for {
		now, behind := counts(), []string{}
		for p := range int32(partitions) {
			if now[p] < from[p]+n {
				behind = append(behind, fmt.Sprintf("%d: %d of %d", p, now[p]-from[p], n))
			}
		}
		if len(behind) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("producer not acknowledged %d more times on every partition within %v: %s", n, progressTimeout, sample(behind))
		}
		<-tick.C
	}
}

// stop ends producing, waits until everything sent is acknowledged and returns the acknowledgements.
func (gp *groupProducer) stop(t *testing.T) map[string]record {
	t.Helper()
	gp.once.Do(func() {
		gp.cancel()
		gp.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), trafficFlush)
		defer cancel()
		if err := gp.cl.Flush(ctx); err != nil {
			t.Errorf("producer: flush: %v", err)
		}
	})
	gp.mu.Lock()
	defer gp.mu.Unlock()
	if len(gp.errs) > 0 {
		t.Errorf("%d records failed at the producer (kgo retries retriable errors itself): %s", len(gp.errs), sample(gp.errs))
	}
	return maps.Clone(gp.acked)
}

// kgoGroupMember is a franz-go group member that commits synchronously what each poll returned,
// before it lets a rebalance proceed (BlockRebalanceOnPoll), and whatever is left when its partitions
// are revoked: a partition it gives up is committed up to the last record it processed, so that no
// record it processed is processed again (exactly once), unless a commit fails.
type kgoGroupMember struct {
	name    string
	cl      *kgo.Client
	cancel  context.CancelFunc
	done    chan struct{}
	closed  sync.Once
	hold    atomic.Bool   // when set, the member stops before letting a rebalance proceed...
	holding chan struct{} // ...says so here...
	release chan struct{} // ...and waits for this
}

func startKgoGroupMember(t *testing.T, c *cluster, l *groupLedger, name, group, topic string) *kgoGroupMember {
	t.Helper()
	m := &kgoGroupMember{name: name, done: make(chan struct{}), holding: make(chan struct{}, 1), release: make(chan struct{})}
	commit := func(ctx context.Context, cl *kgo.Client) {
		offs := cl.UncommittedOffsets()
		if len(offs) == 0 {
			return
		}
		cl.CommitOffsetsSync(ctx, offs, func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			now := time.Now()
			if err != nil {
				l.commitFailed(name, err.Error())
				return
			}
			sent := map[int32]int64{}
			for _, rt := range req.Topics {
				for _, rp := range rt.Partitions {
					sent[rp.Partition] = rp.Offset
				}
			}
			for _, rt := range resp.Topics {
				for _, rp := range rt.Partitions {
					if rp.ErrorCode != 0 {
						l.commitFailed(name, fmt.Sprintf("%d@%d: error code %d", rp.Partition, sent[rp.Partition], rp.ErrorCode))
						continue
					}
					l.commit(name, rp.Partition, sent[rp.Partition], now, false)
				}
			}
		})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.brokers()...), kgo.ClientID(name), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.Balancers(kgo.RangeBalancer()), // a protocol librdkafka and sarama share
		kgo.HeartbeatInterval(heartbeat), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) { commit(ctx, cl) }))
	if err != nil {
		t.Fatal(err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(ctx)
			fs.EachRecord(func(r *kgo.Record) { l.read(name, r.Partition, r.Offset, string(r.Value), time.Now()) })
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			commit(cctx, cl)
			ccancel()
			if m.hold.Load() {
				select {
				case m.holding <- struct{}{}:
				default:
				}
				select {
				case <-m.release:
				case <-ctx.Done():
				}
			}
			cl.AllowRebalance()
			if ctx.Err() != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { m.stop() })
	return m
}

// holdRebalance makes the member stop, after its next poll, before it lets a rebalance proceed; it
// returns once the member is stopped there. resume lets it go on.
func (m *kgoGroupMember) holdRebalance(t *testing.T) {
	t.Helper()
	m.hold.Store(true)
	select {
	case <-m.holding:
	case <-time.After(groupTimeout):
		t.Fatalf("%s did not poll within %v", m.name, groupTimeout)
	}
}

func (m *kgoGroupMember) resume() {
	m.hold.Store(false)
	select {
	case m.release <- struct{}{}:
	case <-m.done:
	}
}

func (m *kgoGroupMember) stop() {
	m.closed.Do(func() {
		m.cancel()
		<-m.done
		m.cl.Close() // revokes (committing what is left) and leaves the group
	})
}

func (m *kgoGroupMember) leave(*testing.T) { m.stop() }

// kcatGroupMember is a kcat -G member whose records and commits go to a ledger. librdkafka's cgrp
// debug log names, when partitions are revoked, each one's stored offset (the next after the last
// record kcat printed), then the commit of those offsets and its outcome.
type kcatGroupMember struct {
	*kcatMember
	name        string
	wg          sync.WaitGroup
	terminating atomic.Bool // the test sent SIGTERM
}

var (
	kcatRemoving  = regexp.MustCompile(`Removing \S+ \[(\d+)\] from assignment \(.*stored offset=(\d+)\)`)
	kcatServed    = regexp.MustCompile(`Served \d+ removed partition\(s\), with \d+ offset\(s\) to commit`)
	kcatCommiting = regexp.MustCompile(`Committing offsets for \d+ partition\(s\) .*: unassigned partitions$`)
	kcatCommitted = regexp.MustCompile(`OffsetCommit for \d+ partition\(s\) .*: unassigned partitions: returned: (.*)$`)
)

func startKcatGroupMember(t *testing.T, kcat, brokers string, l *groupLedger, name, group, topic string) *kcatGroupMember {
	t.Helper()
	m := &kcatGroupMember{name: name, kcatMember: startKcatMember(t, kcat, brokers, group, topic,
		"-X", "client.id="+name, "-X", fmt.Sprintf("heartbeat.interval.ms=%d", heartbeat.Milliseconds()), "-d", "cgrp")}
	m.wg.Go(func() {
		var outN, logN int
		removed, served, inflight := map[int32]int64{}, map[int32]int64{}, map[int32]int64{}
		for {
			exited := m.exited()
			m.out.mu.Lock()
			lines := slices.Clone(m.out.lines[outN:])
			outN = len(m.out.lines)
			m.out.mu.Unlock()
			now := time.Now()
			for _, line := range lines {
				f := strings.Split(line, " ") // kcatFormat: partition offset key value; no keys here
				p, err1 := strconv.ParseInt(f[0], 10, 32)
				o, err2 := strconv.ParseInt(f[min(1, len(f)-1)], 10, 64)
				if len(f) != 4 || err1 != nil || err2 != nil {
					l.problem(fmt.Sprintf("%s printed %q, want \"partition offset key value\"", name, line))
					continue
				}
				l.read(name, int32(p), o, f[3], now)
			}
			m.log.mu.Lock()
			lines = slices.Clone(m.log.lines[logN:])
			logN = len(m.log.lines)
			m.log.mu.Unlock()
			now = time.Now()
			for _, line := range lines {
				if s := kcatRemoving.FindStringSubmatch(line); s != nil {
					p, _ := strconv.ParseInt(s[1], 10, 32)
					o, _ := strconv.ParseInt(s[2], 10, 64)
					removed[int32(p)] = o
				} else if kcatServed.MatchString(line) {
					served, removed = removed, map[int32]int64{}
				} else if kcatCommiting.MatchString(line) {
					inflight, served = served, map[int32]int64{}
				} else if s := kcatCommitted.FindStringSubmatch(line); s != nil {
					for p, o := range inflight {
						if s[1] == "Success" {
							l.commit(name, p, o, now, m.terminating.Load())
						} else {
							l.commitFailed(name, fmt.Sprintf("%d@%d: %s", p, o, s[1]))
						}
					}
					inflight = map[int32]int64{}
				}
			}
			if exited {
				return
			}
			select {
			case <-m.out.changed:
			case <-m.log.changed:
			case <-m.done:
			}
		}
	})
	t.Cleanup(func() { // runs before startKcatMember's
		_ = m.cmd.Process.Kill()
		m.wg.Wait()
	})
	return m
}

func (m *kcatGroupMember) exited() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// leave stops kcat with SIGTERM: it commits what it printed, leaves the group and exits 0.
func (m *kcatGroupMember) leave(t *testing.T) {
	t.Helper()
	if m.exited() {
		return
	}
	m.terminating.Store(true)
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(stopTimeout):
		t.Fatalf("%s did not exit within %v of SIGTERM", m.name, stopTimeout)
	}
	m.wg.Wait()
	if code := m.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("%s exited %d after SIGTERM, want 0; stderr:\n%s", m.name, code, m.log.text())
	}
}

// saramaGroupMember is a sarama consumer-group member: it marks each record it processes, and
// sarama commits the marks every 100 ms and when its session ends.
type saramaGroupMember struct {
	name   string
	g      sarama.ConsumerGroup
	cancel context.CancelFunc
	done   chan struct{}
	closed sync.Once
}

type ledgerHandler struct {
	l    *groupLedger
	name string
}

func (ledgerHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (ledgerHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h ledgerHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		h.l.read(h.name, m.Partition, m.Offset, string(m.Value), time.Now())
		s.MarkMessage(m, "")
	}
	return nil
}

func startSaramaGroupMember(t *testing.T, c *cluster, l *groupLedger, name, group, topic string) *saramaGroupMember {
	t.Helper()
	cfg := saramaConfig("none")
	cfg.ClientID = name
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
	cfg.Consumer.Group.Heartbeat.Interval = heartbeat
	g, err := sarama.NewConsumerGroup(c.brokers(), group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &saramaGroupMember{name: name, g: g, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := g.Consume(ctx, []string{topic}, ledgerHandler{l, name}); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				select { // a coordinator that is moving: join again, as an application would
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}
	}()
	t.Cleanup(m.stop)
	return m
}

func (m *saramaGroupMember) stop() {
	m.closed.Do(func() {
		m.cancel() // ends the session, which commits the marks
		<-m.done
		m.g.Close() // leaves the group
	})
}

func (m *saramaGroupMember) leave(*testing.T) { m.stop() }

// renewingAdmin is an admin client that the test replaces with a new one after an error: a franz-go
// client (v1.22) that has sent group requests to a coordinator killed with kill -9 kept dialing the
// dead agent for a minute, while a new client finds the new coordinator at once.
type renewingAdmin struct {
	brokers []string
	mu      sync.Mutex
	cl      *kgo.Client
}

func newRenewingAdmin(t *testing.T, brokers []string) *renewingAdmin {
	a := &renewingAdmin{brokers: brokers}
	a.renew()
	t.Cleanup(func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.cl.Close()
	})
	return a
}

func (a *renewingAdmin) get() *kadm.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	return kadm.NewClient(a.cl)
}

func (a *renewingAdmin) renew() {
	cl, err := kgo.NewClient(kgo.SeedBrokers(a.brokers...))
	if err != nil {
		panic(err) // only an invalid option fails here
	}
	a.mu.Lock()
	old := a.cl
	a.cl = cl
	a.mu.Unlock()
	if old != nil {
		go old.Close() // requests in flight on it end with an error
	}
}

// groupSetup is a cluster of three agents with a topic that a producer keeps writing and a group
// whose history a ledger keeps.
type groupSetup struct {
	c       *cluster
	brokers string
	adm     *renewingAdmin
	l       *groupLedger
	prod    *groupProducer
	group   string
	topic   string
	kcat    string
}

func newGroupSetup(t *testing.T, topic, group string) *groupSetup {
	t.Helper()
	s := &groupSetup{kcat: needKcat(t), c: startCluster(t, 3), topic: topic, group: group, l: newGroupLedger()}
	s.brokers = strings.Join(s.c.brokers(), ",")
	createTopic(t, s.brokers, topic, churnPartitions)
	s.adm = newRenewingAdmin(t, s.c.brokers())
	s.l.watchCommits(t, s.adm, group, topic)
	s.prod = startGroupProducer(t, s.c, topic, churnPartitions)
	return s
}

func (s *groupSetup) kcatMember(t *testing.T, name string) *kcatGroupMember {
	t.Helper()
	return startKcatGroupMember(t, s.kcat, s.brokers, s.l, name, s.group, s.topic)
}

func (s *groupSetup) kgoMember(t *testing.T, name string) *kgoGroupMember {
	t.Helper()
	return startKgoGroupMember(t, s.c, s.l, name, s.group, s.topic)
}

func (s *groupSetup) saramaMember(t *testing.T, name string) *saramaGroupMember {
	t.Helper()
	return startSaramaGroupMember(t, s.c, s.l, name, s.group, s.topic)
}

// describe is the group's state and its members' client ids, sorted.
func (s *groupSetup) describe() (string, []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gs, err := s.adm.get().DescribeGroups(ctx, s.group)
	if err != nil {
		s.adm.renew()
		return err.Error(), nil
	}
	g := gs[s.group]
	if g.Err != nil {
		return g.Err.Error(), nil
	}
	var ids []string
	for _, m := range g.Members {
		ids = append(ids, m.ClientID)
	}
	slices.Sort(ids)
	return g.State, ids
}

// waitMembers waits until the group is Stable with exactly the members names (client ids), each of
// which then processes records: it has partitions and consumes them.
func (s *groupSetup) waitMembers(t *testing.T, names ...string) {
	t.Helper()
	want := slices.Sorted(slices.Values(names))
	var state string
	var got []string
	s.l.waitFor(t, fmt.Sprintf("group Stable with members %v", want), groupTimeout,
		func() bool { state, got = s.describe(); return state == "Stable" && slices.Equal(got, want) },
		func() string { return fmt.Sprintf("%s with %v", state, got) })
	for _, n := range names {
		s.l.waitReads(t, n, 20)
	}
}

// finish stops the producer and checks the group's history; members are the running ones.
func (s *groupSetup) finish(t *testing.T, members ...groupMember) {
	t.Helper()
	acked := s.prod.stop(t)
	finishGroup(t, s.adm, s.l, s.group, s.topic, acked, members...)
}

// Five members of one group — three librdkafka (kcat -G) and two franz-go — on three agents, while a
// producer writes: they join one by one, a kcat and a franz-go member leave mid-run and another kcat
// joins. Every acknowledged record is processed; no record is processed below a commit its
// partition's previous owners made (each kcat commits what it printed when its partitions are revoked;
// each franz-go member commits synchronously), which, since every commit succeeds here, is exactly
// once; committed offsets never go back and end at the log end.
func TestClusterGroupChurn(t *testing.T) {
	t.Parallel()
	s := newGroupSetup(t, "churn", "churn-group")
	k1 := s.kcatMember(t, "kcat-1")
	s.waitMembers(t, "kcat-1")
	g1 := s.kgoMember(t, "kgo-1")
	s.waitMembers(t, "kcat-1", "kgo-1")
	k2 := s.kcatMember(t, "kcat-2")
	s.waitMembers(t, "kcat-1", "kcat-2", "kgo-1")
	g2 := s.kgoMember(t, "kgo-2")
	s.waitMembers(t, "kcat-1", "kcat-2", "kgo-1", "kgo-2")
	k3 := s.kcatMember(t, "kcat-3")
	s.waitMembers(t, "kcat-1", "kcat-2", "kcat-3", "kgo-1", "kgo-2")

	k1.leave(t)
	s.waitMembers(t, "kcat-2", "kcat-3", "kgo-1", "kgo-2")
	g1.leave(t)
	s.waitMembers(t, "kcat-2", "kcat-3", "kgo-2")
	k4 := s.kcatMember(t, "kcat-4")
	s.waitMembers(t, "kcat-2", "kcat-3", "kcat-4", "kgo-2")
	s.finish(t, k2, k3, k4, g2)
	if again := s.l.processedAgain("kgo-"); len(again) > 0 {
		t.Errorf("%d records processed by a franz-go member, which commits synchronously, were processed again: %s", len(again), sample(again))
	}
}

// Two sarama and two librdkafka (kcat -G) members of one group on three agents, while a producer
// writes; the group's coordinator is killed with kill -9. The members find the new coordinator (sarama
// rejoins when its heartbeats fail), a sarama member then leaves and the rest rebalance through the new
// coordinator. No acknowledged record is lost, committed offsets never go back, and a record is
// processed again only after the last commit made before its new owner got the partition.
func TestClusterGroupCoordinatorKill9SaramaKcat(t *testing.T) {
	t.Parallel()
	s := newGroupSetup(t, "mixed", "mixed-group")
	s1 := s.saramaMember(t, "sarama-1")
	k1 := s.kcatMember(t, "kcat-1")
	s2 := s.saramaMember(t, "sarama-2")
	k2 := s.kcatMember(t, "kcat-2")
	s.waitMembers(t, "kcat-1", "kcat-2", "sarama-1", "sarama-2")

	coord := coordinatorOf(t, s.c, s.adm.get(), s.group)
	t.Logf("killing the coordinator %s", coord.id)
	coord.kill(t)
	s.prod.waitProgress(t, 50, churnPartitions) // the killed agent's partitions are led again
	s.waitMembers(t, "kcat-1", "kcat-2", "sarama-1", "sarama-2")
	if now := coordinatorOf(t, s.c, s.adm.get(), s.group); now.id == coord.id {
		t.Fatalf("the group is still coordinated by the killed %s", coord.id)
	}
	s2.leave(t)
	s.waitMembers(t, "kcat-1", "kcat-2", "sarama-1")
	s.finish(t, s1, k1, k2)
}

// A rebalance interrupted by the coordinator's death: three members (two kcat -G, one franz-go) are
// Stable; the franz-go member holds the next rebalance (as a member busy processing would), a fourth
// member (kcat) joins, and once the group is PreparingRebalance its coordinator is killed with kill
// -9. The group settles, through the new coordinator, Stable with all four members, and consumes
// everything with the guarantee (no loss, no re-delivery below a commit, commits never going back).
func TestClusterGroupCoordinatorKillMidRebalance(t *testing.T) {
	t.Parallel()
	s := newGroupSetup(t, "midreb", "midreb-group")
	k1 := s.kcatMember(t, "kcat-1")
	g1 := s.kgoMember(t, "kgo-1")
	k2 := s.kcatMember(t, "kcat-2")
	s.waitMembers(t, "kcat-1", "kcat-2", "kgo-1")

	g1.holdRebalance(t)
	k3 := s.kcatMember(t, "kcat-3")
	var state string
	s.l.waitFor(t, "the group rebalancing for kcat-3", groupTimeout,
		func() bool { state, _ = s.describe(); return state == "PreparingRebalance" },
		func() string { return "state " + state })
	coord := coordinatorOf(t, s.c, s.adm.get(), s.group)
	t.Logf("killing the coordinator %s with the group %s", coord.id, state)
	coord.kill(t)
	g1.resume()
	s.waitMembers(t, "kcat-1", "kcat-2", "kcat-3", "kgo-1")
	if now := coordinatorOf(t, s.c, s.adm.get(), s.group); now.id == coord.id {
		t.Fatalf("the group is still coordinated by the killed %s", coord.id)
	}
	s.prod.waitProgress(t, 50, churnPartitions)
	s.finish(t, k1, k2, k3, g1)
}

// The guarantee's check itself, on made-up histories of one partition of ten records: it must find
// loss, re-delivery below a commit (reported by a member or seen by a poll) and offsets going back,
// and accept re-delivery after the last commit.
func TestGroupLedgerCheck(t *testing.T) {
	acked := map[string]record{}
	for o := range int64(10) {
		v := fmt.Sprintf("v%d", o)
		acked[v] = record{partition: 0, offset: o, value: v}
	}
	base := time.Now()
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
	type op func(l *groupLedger, clock *int)
	reads := func(member string, from, to int64) op {
		return func(l *groupLedger, clock *int) {
			for o := from; o <= to; o++ {
				*clock++
				l.read(member, 0, o, fmt.Sprintf("v%d", o), at(*clock))
			}
		}
	}
	commits := func(member string, offset int64, closing bool) op {
		return func(l *groupLedger, clock *int) { *clock++; l.commit(member, 0, offset, at(*clock), closing) }
	}
	polls := func(offset int64) op {
		return func(l *groupLedger, clock *int) { *clock++; l.observe(0, offset, at(*clock)) }
	}
	for _, tc := range []struct {
		name string
		ops  []op
		want string // in the one problem expected; "" for none
	}{
		{"handoff at the commit", []op{reads("a", 0, 4), commits("a", 5, false), reads("b", 5, 9)}, ""},
		{"re-delivery after the last commit", []op{reads("a", 0, 4), commits("a", 2, false), reads("b", 2, 9)}, ""},
		{"re-delivery below a reported commit", []op{reads("a", 0, 4), commits("a", 5, false), reads("b", 3, 9)}, "below offset 5 committed by a"},
		{"re-delivery below a polled commit", []op{reads("a", 0, 4), polls(5), reads("b", 3, 9)}, "below offset 5 committed by a poll"},
		{"a record skipped", []op{reads("a", 0, 4), reads("b", 6, 9)}, "never processed (lost)"},
		{"a commit past what was processed", []op{reads("a", 0, 4), commits("a", 7, false), reads("b", 7, 9)}, "without having processed"},
		{"committed offset going back", []op{reads("a", 0, 9), polls(5), polls(3)}, "went back from 5 to 3"},
		{"kcat's record dropped on SIGTERM", []op{reads("a", 0, 4), commits("a", 6, true), reads("b", 6, 9)}, ""},
		{"two records missing at a kcat's SIGTERM", []op{reads("a", 0, 4), commits("a", 7, true), reads("b", 7, 9)}, "never processed (lost)"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			l, clock := newGroupLedger(), 0
			for _, o := range tc.ops {
				o(l, &clock)
			}
			problems, summary := l.check(acked)
			switch {
			case tc.want == "" && len(problems) > 0:
				t.Errorf("problems %q, want none (%s)", problems, summary)
			case tc.want != "" && !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tc.want) }):
				t.Errorf("problems %q, want one with %q (%s)", problems, tc.want, summary)
			}
		})
	}
}
