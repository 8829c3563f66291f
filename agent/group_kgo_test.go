package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/group"
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
func groupShardTP(t *testing.T, a *Agent, name string) coord.TP {
	t.Helper()
	top, ok := a.cache.Topic(offsetsTopicName)
	if !ok {
		t.Fatal("no offsets topic")
	}
	return top.TP(group.Shard(name, top.Partitions))
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

// The coordinator dies (no graceful handover: its lease expires) or shuts down (it resigns); the
// group's shard moves, members carry on with the new coordinator, and no committed offset is lost
// or goes back.
func TestGroupCoordinatorFailover(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name                string
		crash, midRebalance bool
	}{{"crash", true, false}, {"shutdown", false, false}, {"crash mid-rebalance", true, true}} {
		t.Run(tt.name, func(t *testing.T) { t.Parallel(); testGroupFailover(t, tt.crash, tt.midRebalance) })
	}
}

// generation reads a group's persisted generation from etcd.
func generation(t *testing.T, tc *testCluster, group string) int32 {
	t.Helper()
	g, err := tc.client().LoadGroup(testCtx(t), DefaultGroup, group)
	if err != nil || g.Meta == nil {
		t.Fatalf("group %s in etcd: %+v, %v", group, g, err)
	}
	return g.Meta.Generation
}

func testGroupFailover(t *testing.T, crash, midRebalance bool) {
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
			if a.lead.leaders.get(shard) != nil {
				coordinator = a
				return true
			}
		}
		return false
	})
	gen := generation(t, tc, "g")
	if midRebalance { // a third member's join starts a rebalance the coordinator will not finish
		members = append(members, startMember(t, "m2", "g", "events", l, kgo.CooperativeStickyBalancer(), agents))
		groupWait(t, "the rebalance", func() bool {
			d, err := adm.DescribeGroups(testCtx(t), "g")
			return err == nil && d["g"].State != "Stable"
		})
	}
	if crash {
		t.Logf("killing coordinator %s", coordinator.cfg.ID)
		coordinator.Close()
		coordinator.etcd.Close() // as a dead process: its lease is no longer kept alive and expires
	} else {
		t.Logf("shutting coordinator %s down", coordinator.cfg.ID)
		if err := coordinator.Shutdown(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	var survivors []*Agent
	for _, a := range agents {
		if a != coordinator {
			survivors = append(survivors, a)
		}
	}
	groupWait(t, "a new coordinator", func() bool {
		for _, a := range survivors {
			if a.lead.leaders.get(shard) != nil {
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
	if after := generation(t, tc, "g"); after <= gen {
		t.Errorf("generation %d after the failover and the members leaving, %d before", after, gen)
	}
}

// A coordinator whose lease was revoked but which has not noticed yet (a zombie) cannot commit: its
// write is fenced, its client is told NOT_COORDINATOR, and the successor's commit stands.
func TestGroupZombieCoordinatorIsFenced(t *testing.T) {
	tc := newTestCluster(t)
	h := newSessionHooks(t)
	za := tc.newAgent("zombie")
	za.wrapSession = h.wrap
	var frozen atomic.Pointer[group.Leadership] // what the zombie believes it leads
	za.groups.WrapLeader(func(leads func(coord.TP) (group.Leadership, bool)) func(coord.TP) (group.Leadership, bool) {
		return func(tp coord.TP) (group.Leadership, bool) {
			if l := frozen.Load(); l != nil && l.TP == tp {
				return *l, true
			}
			return leads(tp)
		}
	})
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
	l, ok := za.shardLeadership(shard)
	if !ok {
		t.Fatal("the only agent does not lead the group's shard")
	}
	frozen.Store(&l)
	h.setAcquire(func(context.Context, coord.TP) error { return errInjected }) // the zombie leads nothing new
	if _, err := tc.client().Etcd().Revoke(testCtx(t), h.session(t, 0).coord().LeaseID()); err != nil {
		t.Fatal(err)
	}
	groupWait(t, "the zombie to lose its leaderships", func() bool { return za.lead.leaders.get(shard) == nil })

	sb := tc.agent("successor")
	groupWait(t, "the successor to lead the shard", func() bool { return sb.lead.leaders.get(shard) != nil })
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

// The admin side of groups through kadm: listing, describing, deleting offsets and groups, with
// Kafka's refusals while members are there; the offsets topic is internal and refuses produce.
func TestGroupAdmin(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	createTopic(t, cl, "subscribed", 2, nil)
	createTopic(t, cl, "other", 1, nil)
	produceKeys(t, cl, "subscribed", 0, 10)
	l := newLedger(t)
	m := startMember(t, "m", "g", "subscribed", l, kgo.RangeBalancer(), []*Agent{a})
	groupWait(t, "the records", func() bool { return l.count() == 10 })
	if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	other := kadm.Offsets{}
	other.Add(kadm.Offset{Topic: "other", Partition: 0, At: 1, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(ctx, "g", other); err == nil && resp.Error() == nil {
		t.Fatal("a simple commit to a group with members succeeded")
	}

	listed, err := adm.ListGroups(ctx)
	if err != nil || len(listed) != 1 || listed["g"].State != "Stable" || listed["g"].ProtocolType != "consumer" {
		t.Fatalf("list: %+v, %v", listed, err)
	}
	described, err := adm.DescribeGroups(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	dg := described["g"]
	if dg.State != "Stable" || dg.Protocol != "range" || len(dg.Members) != 1 || dg.Members[0].ClientID != "m" {
		t.Fatalf("describe: %+v", dg)
	}
	if ca, ok := dg.Members[0].Assigned.AsConsumer(); !ok || len(ca.Topics) != 1 || len(ca.Topics[0].Partitions) != 2 {
		t.Fatalf("assignment: %+v", dg.Members[0].Assigned)
	}
	if resp, err := adm.DeleteGroup(ctx, "g"); err == nil && resp.Err == nil || !errors.Is(resp.Err, kerr.NonEmptyGroup) {
		t.Fatalf("delete a group with members: %+v, %v", resp, err)
	}
	del := kadm.TopicsSet{}
	del.Add("subscribed", 0)
	dresp, err := adm.DeleteOffsets(ctx, "g", del)
	if err != nil || !errors.Is(dresp["subscribed"][0], kerr.GroupSubscribedToTopic) {
		t.Fatalf("delete a subscribed topic's offsets: %v, %v", dresp, err)
	}

	m.close()
	groupWait(t, "the group to empty", func() bool {
		d, err := adm.DescribeGroups(ctx, "g")
		return err == nil && d["g"].State == "Empty"
	})
	if resp, err := adm.CommitOffsets(ctx, "g", other); err != nil || resp.Error() != nil {
		t.Fatalf("a simple commit to the Empty group: %v, %v", resp, err)
	}
	all, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if s := all["subscribed"]; len(s) != 2 || s[0].At+s[1].At != 10 || all["other"][0].At != 1 {
		t.Fatalf("committed %+v", all)
	}
	if dresp, err = adm.DeleteOffsets(ctx, "g", del); err != nil || dresp.Error() != nil {
		t.Fatalf("delete offsets of the Empty group: %v, %v", dresp, err)
	}
	offs, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := offs.Lookup("subscribed", 0); ok || len(offs["subscribed"]) != 1 || offs["other"][0].At != 1 {
		t.Fatalf("offsets after the deletion: %+v", offs)
	}
	if resp, err := adm.DeleteGroup(ctx, "g"); err != nil || resp.Err != nil {
		t.Fatalf("delete the Empty group: %+v, %v", resp, err)
	}
	if listed, err := adm.ListGroups(ctx); err != nil || len(listed) != 0 {
		t.Fatalf("list after the deletion: %+v, %v", listed, err)
	}
	if g, err := tc.client().LoadGroup(ctx, DefaultGroup, "g"); err != nil || g.Meta != nil || len(g.Offsets) != 0 {
		t.Fatalf("etcd after the deletion: %+v, %v", g, err)
	}
	if resp, err := adm.DeleteGroup(ctx, "g"); err == nil && !errors.Is(resp.Err, kerr.GroupIDNotFound) {
		t.Fatalf("delete a missing group: %+v", resp)
	}

	md, err := adm.Metadata(ctx, offsetsTopicName)
	if err != nil || !md.Topics[offsetsTopicName].IsInternal {
		t.Fatalf("the offsets topic is not internal: %+v, %v", md.Topics[offsetsTopicName], err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: offsetsTopicName, Value: []byte("x")}).FirstErr(); !errors.Is(err, kerr.InvalidTopicException) {
		t.Fatalf("produce to the offsets topic: %v, want INVALID_TOPIC_EXCEPTION", err)
	}

	// Closing the agent stops every goroutine of the coordinator: its loop, loaders and timers.
	a.Close()
	for _, frame := range []string{"group.(*Coordinator)", "group.(*shard)", "group.(*timers)", "group.(*group)"} {
		if n := goroutinesIn(frame); n != 0 {
			t.Errorf("%d goroutines in %s after Close", n, frame)
		}
	}
}

// FindCoordinator answers every key of a batch, and the single key of old versions; transaction
// coordinators are refused.
func TestFindCoordinator(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	ctx := testCtx(t)
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.CoordinatorKeys = []string{"g1", "g2", ""}
	var resp *kmsg.FindCoordinatorResponse
	groupWait(t, "every shard to have a leader", func() bool { // until then: COORDINATOR_NOT_AVAILABLE
		var err error
		resp, err = req.RequestWith(ctx, cl)
		if err != nil || len(resp.Coordinators) != 3 {
			t.Fatalf("batched: %+v, %v", resp, err)
		}
		return !slices.ContainsFunc(resp.Coordinators, func(c kmsg.FindCoordinatorResponseCoordinator) bool {
			return c.ErrorCode == kerr.CoordinatorNotAvailable.Code
		})
	})
	for _, c := range resp.Coordinators {
		if c.ErrorCode != 0 || c.NodeID != nodeID("a1") || c.Host+":"+strconv.Itoa(int(c.Port)) != a.KafkaAddr() {
			t.Fatalf("coordinator of %q: %+v", c.Key, c)
		}
	}
	raw := dialRaw(t, a)
	for _, v := range []int16{0, 3} {
		old := kmsg.NewPtrFindCoordinatorRequest()
		old.CoordinatorKey = "g1"
		r := raw.roundTrip(old, v).(*kmsg.FindCoordinatorResponse)
		if r.ErrorCode != 0 || r.NodeID != nodeID("a1") || r.Host+":"+strconv.Itoa(int(r.Port)) != a.KafkaAddr() {
			t.Fatalf("v%d: %+v", v, r)
		}
	}
	txn := kmsg.NewPtrFindCoordinatorRequest()
	txn.CoordinatorType, txn.CoordinatorKeys = 1, []string{"txn"}
	kresp, err := cl.Broker(int(nodeID("a1"))).Request(ctx, txn)
	if err != nil {
		t.Fatal(err)
	}
	if c := kresp.(*kmsg.FindCoordinatorResponse).Coordinators[0]; c.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code {
		t.Fatalf("transaction coordinator: %+v", c)
	}
}

// streamhouse_group_lag is each committed partition's high watermark minus its committed offset, on
// the group's coordinator.
func TestGroupLagMetric(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	ctx := testCtx(t)
	createTopic(t, cl, "lagging", 2, nil)
	var recs []*kgo.Record
	for i := range 15 {
		recs = append(recs, &kgo.Record{Topic: "lagging", Partition: int32(i % 2), Value: []byte("v")})
	}
	cl2 := kgoClient(t, []kgo.Opt{kgo.RecordPartitioner(kgo.ManualPartitioner())}, a)
	if err := cl2.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: "lagging", Partition: 0, At: 3, LeaderEpoch: -1})
	offs.Add(kadm.Offset{Topic: "lagging", Partition: 1, At: 7, LeaderEpoch: -1})
	if resp, err := kadm.NewClient(cl).CommitOffsets(ctx, "lagger", offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v, %v", resp, err)
	}
	mfs, err := a.cfg.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "streamhouse_group_lag" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			got[labels["group"]+"/"+labels["topic"]+"/"+labels["partition"]] = m.GetGauge().GetValue()
		}
	}
	if want := map[string]float64{"lagger/lagging/0": 5, "lagger/lagging/1": 0}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lag %v, want %v", got, want)
	}
}

// The oldest versions, spoken by hand: JoinGroup v0 (no MEMBER_ID_REQUIRED, the session timeout as
// rebalance timeout), SyncGroup, Heartbeat, OffsetCommit v1 and OffsetFetch v1 (errors per
// partition), LeaveGroup v0; and NOT_COORDINATOR from an agent that does not coordinate the group.
func TestGroupRawProtocol(t *testing.T) {
	tc := newTestCluster(t)
	a1, a2 := tc.agent("a1"), tc.agent("a2")
	cl := kgoClient(t, nil, a1, a2)
	createTopic(t, cl, "t", 1, nil)
	shard := groupShardTP(t, a1, "raw")
	var coordinator, other *Agent
	waitFor(t, "the group's coordinator", func() bool {
		switch {
		case a1.lead.leaders.get(shard) != nil:
			coordinator, other = a1, a2
		case a2.lead.leaders.get(shard) != nil:
			coordinator, other = a2, a1
		}
		return coordinator != nil
	})
	c := dialRaw(t, coordinator)

	join := kmsg.NewPtrJoinGroupRequest()
	join.Group, join.SessionTimeoutMillis, join.ProtocolType = "raw", 10000, "consumer"
	join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{0, 1}}}
	jr := c.roundTrip(join, 0).(*kmsg.JoinGroupResponse)
	if jr.ErrorCode != 0 || jr.Generation != 1 || jr.MemberID == "" || jr.LeaderID != jr.MemberID || len(jr.Members) != 1 {
		t.Fatalf("join v0: %+v", jr)
	}
	hb := kmsg.NewPtrHeartbeatRequest()
	hb.Group, hb.MemberID, hb.Generation = "raw", jr.MemberID, 1
	wantOK(t, "heartbeat v0 before the sync", c.roundTrip(hb, 0).(*kmsg.HeartbeatResponse).ErrorCode)
	wantCode(t, "heartbeat to another agent", dialRaw(t, other).roundTrip(hb, 0).(*kmsg.HeartbeatResponse).ErrorCode, kerr.NotCoordinator)

	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.MemberID, sync.Generation = "raw", jr.MemberID, 1
	sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: jr.MemberID, MemberAssignment: []byte("all")}}
	sr := c.roundTrip(sync, 0).(*kmsg.SyncGroupResponse)
	if sr.ErrorCode != 0 || string(sr.MemberAssignment) != "all" {
		t.Fatalf("sync v0: %+v", sr)
	}

	commit := kmsg.NewPtrOffsetCommitRequest()
	commit.Group, commit.MemberID, commit.Generation = "raw", jr.MemberID, 1
	md := "meta"
	commit.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{
		{Partition: 0, Offset: 42, Metadata: &md}, {Partition: 9, Offset: 1}}}}
	cr := c.roundTrip(commit, 1).(*kmsg.OffsetCommitResponse)
	wantOK(t, "commit v1", cr.Topics[0].Partitions[0].ErrorCode)
	wantCode(t, "commit v1 of a missing partition", cr.Topics[0].Partitions[1].ErrorCode, kerr.UnknownTopicOrPartition)
	commit.Generation = 0
	wantCode(t, "commit v1 at a wrong generation", c.roundTrip(commit, 1).(*kmsg.OffsetCommitResponse).Topics[0].Partitions[0].ErrorCode, kerr.IllegalGeneration)

	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.Group = "raw"
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{0, 1}}, {Topic: "missing", Partitions: []int32{0}}}
	fr := c.roundTrip(fetch, 1).(*kmsg.OffsetFetchResponse)
	if p := fr.Topics[0].Partitions; p[0].Offset != 42 || *p[0].Metadata != "meta" || p[1].Offset != -1 || fr.Topics[1].Partitions[0].Offset != -1 {
		t.Fatalf("fetch v1: %+v", fr.Topics)
	}
	fr = dialRaw(t, other).roundTrip(fetch, 1).(*kmsg.OffsetFetchResponse)
	wantCode(t, "fetch v1 from another agent", fr.Topics[0].Partitions[0].ErrorCode, kerr.NotCoordinator)

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.Group, leave.MemberID = "raw", jr.MemberID
	wantOK(t, "leave v0", c.roundTrip(leave, 0).(*kmsg.LeaveGroupResponse).ErrorCode)
	wantCode(t, "leave v0 again", c.roundTrip(leave, 0).(*kmsg.LeaveGroupResponse).ErrorCode, kerr.UnknownMemberID)
	dg := kmsg.NewPtrDescribeGroupsRequest()
	dg.Groups = []string{"raw", "never"}
	dr := c.roundTrip(dg, 0).(*kmsg.DescribeGroupsResponse)
	if dr.Groups[0].State != "Empty" || dr.Groups[0].ErrorCode != 0 || dr.Groups[1].State != "Dead" {
		t.Fatalf("describe v0: %+v", dr.Groups)
	}
}
