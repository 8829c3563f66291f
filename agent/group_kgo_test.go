package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// groupWait polls cond (a client's view, which it can only poll) until it holds or the test's
// context ends.
func groupWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// produceKeys produces n records to topic, keys "0".."n-1" spread over its partitions.
func produceKeys(t *testing.T, cl *kgo.Client, topic string, from, n int) {
	t.Helper()
	var recs []*kgo.Record
	for i := from; i < from+n; i++ {
		recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte("v")})
	}
	if err := cl.ProduceSync(testCtx(t), recs...).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
}

// ledger records what a group's members processed, and fails on a record processed twice, unless
// it lies at or after replayFrom[partition]: progress not committed when a member lost its session.
type ledger struct {
	t          *testing.T
	mu         sync.Mutex
	seen       map[string]string // "partition/offset" → member
	keys       map[string]bool
	replayFrom map[int32]int64
	replayed   int
	errs       []error
}

func newLedger(t *testing.T) *ledger {
	return &ledger{t: t, seen: map[string]string{}, keys: map[string]bool{}}
}

func (l *ledger) record(member string, r *kgo.Record) {
	l.mu.Lock()
	defer l.mu.Unlock()
	at := fmt.Sprintf("%d/%d", r.Partition, r.Offset)
	if prev, ok := l.seen[at]; ok {
		if from, ok := l.replayFrom[r.Partition]; ok && r.Offset >= from {
			l.replayed++
		} else {
			l.errs = append(l.errs, fmt.Errorf("%s processed by %s and again by %s", at, prev, member))
		}
	}
	l.seen[at] = member
	l.keys[string(r.Key)] = true
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.keys)
}

func (l *ledger) check(n int) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, err := range l.errs {
		l.t.Error(err)
	}
	for i := range n {
		if !l.keys[strconv.Itoa(i)] {
			l.t.Errorf("key %d never processed", i)
		}
	}
}

// groupMember is a kgo group consumer that processes each record once per committed position: it
// commits what it processed before giving partitions up, and rebalances only between polls.
type groupMember struct {
	name string
	cl   *kgo.Client
	stop chan struct{}
	done chan struct{}
}

func startMember(t *testing.T, name, group, topic string, l *ledger, balancer kgo.GroupBalancer, agents []*Agent, extra ...kgo.Opt) *groupMember {
	t.Helper()
	opts := append([]kgo.Opt{
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.Balancers(balancer),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.ClientID(name),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				l.mu.Lock()
				l.errs = append(l.errs, fmt.Errorf("%s: commit on revoke: %w", name, err))
				l.mu.Unlock()
			}
		}),
	}, extra...)
	m := &groupMember{name: name, cl: kgoClient(t, opts, agents...), stop: make(chan struct{}), done: make(chan struct{})}
	go m.run(l)
	t.Cleanup(m.close)
	return m
}

func (m *groupMember) run(l *ledger) {
	defer close(m.done)
	for {
		select {
		case <-m.stop:
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		fs := m.cl.PollRecords(ctx, 100)
		cancel()
		fs.EachRecord(func(r *kgo.Record) { l.record(m.name, r) })
		m.cl.AllowRebalance()
	}
}

// close commits what the member processed and leaves the group.
func (m *groupMember) close() {
	select {
	case <-m.stop:
		return
	default:
	}
	close(m.stop)
	<-m.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = m.cl.CommitUncommittedOffsets(ctx)
	m.cl.LeaveGroup()
	m.cl.Close()
}

// Members of each client-side balancer come and go while records are produced; every record is
// processed exactly once, since members commit before they give partitions up.
func TestGroupBalancers(t *testing.T) {
	for _, b := range []kgo.GroupBalancer{kgo.RangeBalancer(), kgo.RoundRobinBalancer(), kgo.StickyBalancer(), kgo.CooperativeStickyBalancer()} {
		t.Run(b.ProtocolName(), func(t *testing.T) {
			t.Parallel()
			tc := newTestCluster(t)
			a1, a2 := tc.agent("a1"), tc.agent("a2")
			agents := []*Agent{a1, a2}
			cl := kgoClient(t, nil, agents...)
			createTopic(t, cl, "events", 6, nil)
			l := newLedger(t)
			m1 := startMember(t, "m1", "g", "events", l, b, agents)
			m2 := startMember(t, "m2", "g", "events", l, b, agents)
			produceKeys(t, cl, "events", 0, 300)
			groupWait(t, "the first records", func() bool { return l.count() >= 100 })
			m3 := startMember(t, "m3", "g", "events", l, b, agents)
			produceKeys(t, cl, "events", 300, 300)
			groupWait(t, "more records", func() bool { return l.count() >= 400 })
			m1.close()
			produceKeys(t, cl, "events", 600, 300)
			groupWait(t, "every record", func() bool { return l.count() == 900 })
			m2.close()
			m3.close()
			l.check(900)
			lags, err := kadm.NewClient(cl).Lag(testCtx(t), "g")
			if err != nil {
				t.Fatal(err)
			}
			if total := lags["g"].Lag.Total(); total != 0 {
				t.Errorf("group lag %d after every record was processed and committed", total)
			}
		})
	}
}

// groupShardTP is the coordinator shard of a group as a's view knows it.
func groupShardTP(t *testing.T, a *Agent, group string) coord.TP {
	t.Helper()
	top, ok := a.cache.Topic(offsetsTopicName)
	if !ok {
		t.Fatal("no offsets topic")
	}
	return top.TP(groupShard(group, top.Partitions))
}

func committed(t *testing.T, adm *kadm.Client, group string) map[int32]int64 {
	t.Helper()
	offs, err := adm.FetchOffsets(testCtx(t), group)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	offs.Each(func(o kadm.OffsetResponse) { out[o.Partition] = o.At })
	return out
}

// The coordinator dies (no graceful handover: its lease expires); the group's shard moves, members
// carry on with the new coordinator, and no committed offset is lost or goes back.
func TestGroupCoordinatorFailover(t *testing.T) {
	tc := newTestCluster(t)
	agents := []*Agent{tc.agent("a1"), tc.agent("a2"), tc.agent("a3")}
	cl := kgoClient(t, nil, agents...)
	createTopic(t, cl, "events", 4, nil)
	adm := kadm.NewClient(cl)
	l := newLedger(t)
	var members []*groupMember
	for i := range 2 {
		members = append(members, startMember(t, fmt.Sprintf("m%d", i), "g", "events", l, kgo.CooperativeStickyBalancer(), agents))
	}
	produceKeys(t, cl, "events", 0, 200)
	groupWait(t, "the first records", func() bool { return l.count() == 200 })
	for _, m := range members {
		if err := m.cl.CommitUncommittedOffsets(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	before := committed(t, adm, "g")
	// A member that cannot reach the dead coordinator for long enough ends its session without
	// committing (kgo treats it as lost), and the new session resumes from the committed offset: what
	// it processed after that may be processed again, nothing before.
	l.mu.Lock()
	l.replayFrom = before
	l.mu.Unlock()

	shard := groupShardTP(t, agents[0], "g")
	var coordinator *Agent
	groupWait(t, "the coordinator", func() bool {
		for _, a := range agents {
			if a.leaders.get(shard) != nil {
				coordinator = a
				return true
			}
		}
		return false
	})
	t.Logf("killing coordinator %s", coordinator.cfg.ID)
	coordinator.Close()
	coordinator.etcd.Close() // as a dead process: its lease is no longer kept alive and expires
	var survivors []*Agent
	for _, a := range agents {
		if a != coordinator {
			survivors = append(survivors, a)
		}
	}
	groupWait(t, "a new coordinator", func() bool {
		for _, a := range survivors {
			if a.leaders.get(shard) != nil {
				return true
			}
		}
		return false
	})
	pcl := kgoClient(t, nil, survivors...)
	produceKeys(t, pcl, "events", 200, 200)
	groupWait(t, "the records after the failover", func() bool { return l.count() == 400 })
	for _, m := range members {
		// A client may first try the dead coordinator's address; it finds the new one and retries.
		groupWait(t, "a commit after the failover", func() bool { return m.cl.CommitUncommittedOffsets(testCtx(t)) == nil })
	}
	after := committed(t, kadm.NewClient(pcl), "g")
	for p, off := range before {
		if after[p] < off {
			t.Errorf("partition %d: committed %d before the failover, %d after", p, off, after[p])
		}
	}
	for _, m := range members {
		m.close()
	}
	l.check(400)
	t.Logf("%d records processed again after the failover, from the committed position", l.replayed)
	described, err := kadm.NewClient(pcl).DescribeGroups(testCtx(t), "g")
	if err != nil {
		t.Fatal(err)
	}
	if st := described["g"].State; st != "Empty" {
		t.Errorf("group state %s after every member left, want Empty", st)
	}
}

// A coordinator whose lease was revoked but which has not noticed yet (a zombie) cannot commit: its
// write is fenced, its client is told NOT_COORDINATOR, and the successor's commit stands.
func TestGroupZombieCoordinatorIsFenced(t *testing.T) {
	tc := newTestCluster(t)
	h := newSessionHooks(t)
	za := tc.newAgent("zombie")
	za.wrapSession = h.wrap
	var frozen atomic.Pointer[partitionLeader] // what the zombie believes it leads
	leads := za.groups.leader
	za.groups.leader = func(tp coord.TP) *partitionLeader {
		if pl := frozen.Load(); pl != nil && pl.tp == tp {
			return pl
		}
		return leads(tp)
	}
	if err := za.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	cl := kgoClient(t, nil, za)
	createTopic(t, cl, "data", 1, nil)
	commit := func(cl *kgo.Client, off int64) error {
		resp, err := kadm.NewClient(cl).CommitOffsets(testCtx(t), "g", kadm.OffsetsFromRecords(kgo.Record{Topic: "data", Partition: 0, Offset: off - 1}))
		if err == nil {
			err = resp.Error()
		}
		return err
	}
	if err := commit(cl, 10); err != nil {
		t.Fatal(err)
	}
	shard := groupShardTP(t, za, "g")
	pl := za.leaders.get(shard)
	if pl == nil {
		t.Fatal("the only agent does not lead the group's shard")
	}
	frozen.Store(pl)
	h.setAcquire(func(context.Context, coord.TP) error { return errInjected }) // the zombie leads nothing new
	if _, err := tc.client().Etcd().Revoke(testCtx(t), h.session(t, 0).coord().LeaseID()); err != nil {
		t.Fatal(err)
	}
	groupWait(t, "the zombie to lose its leaderships", func() bool { return za.leaders.get(shard) == nil })

	sb := tc.agent("successor")
	groupWait(t, "the successor to lead the shard", func() bool { return sb.leaders.get(shard) != nil })
	bcl := kgoClient(t, nil, sb)
	groupWait(t, "a commit through the successor", func() bool { return commit(bcl, 20) == nil })

	req := kmsg.NewPtrOffsetCommitRequest()
	req.Group, req.Generation = "g", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "data"
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Offset = 15
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := cl.Broker(int(nodeID("zombie"))).Request(testCtx(t), req)
	if err != nil {
		t.Fatal(err)
	}
	code := kresp.(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode
	if err := kerr.ErrorForCode(code); !errors.Is(err, kerr.NotCoordinator) {
		t.Fatalf("the zombie's commit answered %v, want NOT_COORDINATOR", err)
	}
	g, err := tc.client().LoadGroup(testCtx(t), DefaultGroup, "g")
	if err != nil || len(g.Offsets) != 1 || g.Offsets[0].Offset != 20 {
		t.Fatalf("committed offsets after the zombie's attempt: %+v, %v", g.Offsets, err)
	}
}
