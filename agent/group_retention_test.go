package agent

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Offset retention (KIP-211) runs on a fake wall clock: the tests move it and sweep the shards
// directly, or let the shards' own loop sweep.

const testRetention = time.Hour

// retentionClock is the coordinator's wall clock in these tests.
type retentionClock struct{ ms atomic.Int64 }

func (c *retentionClock) now() time.Time          { return time.UnixMilli(c.ms.Load()) }
func (c *retentionClock) advance(d time.Duration) { c.ms.Add(d.Milliseconds()) }

// retentionAgent starts one agent with a retention of testRetention, checked every check, on a fake
// clock.
func retentionAgent(t *testing.T, check time.Duration) (*testCluster, *Agent, *retentionClock) {
	t.Helper()
	tc := newTestCluster(t)
	a := tc.newAgent("a1", func(c *Config) {
		c.OffsetsRetention = testRetention
		c.OffsetsRetentionCheckInterval = check
	})
	clk := &retentionClock{}
	clk.ms.Store(time.Now().UnixMilli())
	a.groups.SetClock(clk.now)
	if err := a.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return tc, a, clk
}

// sweepRetention runs one retention sweep on every shard a leads, and returns what it deleted.
func sweepRetention(a *Agent) (offsets, groups int) {
	return a.groups.ExpireOffsets(a.groups.Now())
}

// listed reports whether ListGroups lists group.
func listed(t *testing.T, adm *kadm.Client, group string) bool {
	t.Helper()
	gs, err := adm.ListGroups(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	_, ok := gs[group]
	return ok
}

func simpleCommit(t *testing.T, adm *kadm.Client, group, topic string, partition int32, at int64) {
	t.Helper()
	offs := kadm.Offsets{}
	offs.Add(kadm.Offset{Topic: topic, Partition: partition, At: at, LeaderEpoch: -1})
	if resp, err := adm.CommitOffsets(testCtx(t), group, offs); err != nil || resp.Error() != nil {
		t.Fatalf("commit: %v, %v", resp, err)
	}
}

// A consumer group's offsets, however old, are kept while it has members, and for the retention
// once it becomes Empty; then they expire, and the group goes with them: ListGroups no longer lists
// it, OffsetFetch finds nothing, etcd holds nothing. The shard's own loop does the last sweep.
func TestGroupRetentionEmptyGroupExpires(t *testing.T) {
	tc, a, clk := retentionAgent(t, 20*time.Millisecond)
	cl := kgoClient(t, nil, a)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	createTopic(t, cl, "data", 2, nil)
	produceKeys(t, cl, "data", 0, 10)
	l := newLedger(t)
	m := startMember(t, "m", "g", "data", l, kgo.RangeBalancer(), []*Agent{a})
	groupWait(t, "the records", func() bool { return l.count() == 10 })
	if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}

	// An active member keeps the group's offsets, however old.
	clk.advance(100 * testRetention)
	if o, g := sweepRetention(a); o != 0 || g != 0 {
		t.Fatalf("a sweep of a group with a member deleted %d offsets, %d groups", o, g)
	}
	if c := committed(t, adm, "g"); len(c) != 2 || c[0]+c[1] != 10 {
		t.Fatalf("committed with a member: %v", c)
	}

	m.close()
	groupWait(t, "the group to empty", func() bool {
		d, err := adm.DescribeGroups(ctx, "g")
		return err == nil && d["g"].State == "Empty"
	})
	emptyAt := clk.now()
	if snap, err := tc.client().LoadGroup(ctx, DefaultGroup, "g"); err != nil || snap.Meta.EmptySinceMs != emptyAt.UnixMilli() {
		t.Fatalf("persisted metadata %+v, %v; want Empty since %d", snap.Meta, err, emptyAt.UnixMilli())
	}

	// Empty for less than the retention (its offsets were committed long before): kept.
	clk.advance(testRetention - time.Minute)
	if o, g := sweepRetention(a); o != 0 || g != 0 {
		t.Fatalf("a sweep of a recently Empty group deleted %d offsets, %d groups", o, g)
	}
	if c := committed(t, adm, "g"); len(c) != 2 || !listed(t, adm, "g") {
		t.Fatalf("recently Empty group: committed %v", c)
	}

	clk.advance(2 * time.Minute)
	groupWait(t, "the group to expire", func() bool { return !listed(t, adm, "g") })
	if c := committed(t, adm, "g"); len(c) != 0 {
		t.Fatalf("committed after expiry: %v", c)
	}
	if snap, err := tc.client().LoadGroup(ctx, DefaultGroup, "g"); err != nil || snap.Meta != nil || len(snap.Offsets) != 0 {
		t.Fatalf("etcd after expiry: %+v, %v", snap, err)
	}
}

// Offsets committed without group management (assign + commit, generation -1) expire one by one,
// retention after their commit; the group goes with the last.
func TestGroupRetentionStandaloneByCommitTime(t *testing.T) {
	tc, a, clk := retentionAgent(t, time.Hour) // no sweep but the test's
	cl := kgoClient(t, nil, a)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	createTopic(t, cl, "data", 2, nil)
	simpleCommit(t, adm, "s", "data", 0, 5)
	clk.advance(testRetention / 2)
	simpleCommit(t, adm, "s", "data", 1, 7)
	clk.advance(testRetention / 2)
	if o, g := sweepRetention(a); o != 1 || g != 0 {
		t.Fatalf("sweep deleted %d offsets, %d groups; want the first commit only", o, g)
	}
	if c := committed(t, adm, "s"); len(c) != 1 || c[1] != 7 || !listed(t, adm, "s") {
		t.Fatalf("committed after the first expiry: %v", c)
	}
	if snap, err := tc.client().LoadGroup(ctx, DefaultGroup, "s"); err != nil || len(snap.Offsets) != 1 || snap.Offsets[0].Partition != 1 {
		t.Fatalf("etcd after the first expiry: %+v, %v", snap, err)
	}
	clk.advance(testRetention / 2)
	if o, g := sweepRetention(a); o != 1 || g != 1 {
		t.Fatalf("sweep deleted %d offsets, %d groups; want the last and the group", o, g)
	}
	if c := committed(t, adm, "s"); len(c) != 0 || listed(t, adm, "s") {
		t.Fatalf("after the last expiry: committed %v, still listed", c)
	}
	if snap, err := tc.client().LoadGroup(ctx, DefaultGroup, "s"); err != nil || snap.Meta != nil || len(snap.Offsets) != 0 {
		t.Fatalf("etcd after expiry: %+v, %v", snap, err)
	}
	// The group can be used again.
	simpleCommit(t, adm, "s", "data", 0, 9)
	if c := committed(t, adm, "s"); len(c) != 1 || c[0] != 9 {
		t.Fatalf("committed after reuse: %v", c)
	}
}

// A coordinator that lost its shard — its fence is an epoch the shard's leader key no longer has —
// deletes nothing when it sweeps: its write is fenced and the shard marked lost, and the
// coordinator at the current epoch still serves the offsets.
func TestGroupRetentionFencedSweepDeletesNothing(t *testing.T) {
	tc, a, _ := retentionAgent(t, time.Hour)
	cl := kgoClient(t, nil, a)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t)
	createTopic(t, cl, "data", 1, nil)
	simpleCommit(t, adm, "s", "data", 0, 5)

	tp := groupShardTP(t, a, "s")
	loaded, o, g, lost, ok := a.groups.ExpireStale(ctx, tp, time.Now().Add(100*testRetention))
	if !ok {
		t.Fatal("the group's shard is not loaded")
	}
	if loaded != 1 {
		t.Fatalf("the stale shard loaded %d groups", loaded)
	}
	if o != 0 || g != 0 {
		t.Fatalf("a fenced sweep deleted %d offsets, %d groups", o, g)
	}
	if !lost {
		t.Fatal("the fenced shard is not marked lost")
	}
	if snap, err := tc.client().LoadGroup(ctx, DefaultGroup, "s"); err != nil || snap.Meta == nil || len(snap.Offsets) != 1 || snap.Offsets[0].Offset != 5 {
		t.Fatalf("etcd after the fenced sweep: %+v, %v", snap, err)
	}
	if c := committed(t, adm, "s"); len(c) != 1 || c[0] != 5 || !listed(t, adm, "s") {
		t.Fatalf("committed after the fenced sweep: %v", c)
	}
}
