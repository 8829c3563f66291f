package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// franz-go GroupTransactSession members (in -> out) over three agents while the agent coordinating
// one member's transactional id, or the group, crashes (its lease expires): the members carry on, a
// session that fails is started again with the same id, every input record comes out exactly once
// for a read_committed consumer.
func TestGroupTransactSessionCoordinatorCrash(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		kind int8
		key  string
	}{{"transaction", coordinatorTypeTxn, "txc-0"}, {"group", coordinatorTypeGroup, "txc"}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			testGroupTransactSessionCrash(t, tt.kind, tt.key)
		})
	}
}

func testGroupTransactSessionCrash(t *testing.T, kind int8, key string) {
	tc := newTestCluster(t)
	on := func(c *Config) { c.Transactions = true }
	agents := []*Agent{tc.agent("a1", on), tc.agent("a2", on), tc.agent("a3", on)}
	cl := kgoClient(t, nil, agents...)
	createTopic(t, cl, "txc-in", 4, nil)
	createTopic(t, cl, "txc-out", 4, nil)
	ctx := testCtx(t)
	const n = 3000
	var in []*kgo.Record
	for i := range n {
		in = append(in, &kgo.Record{Topic: "txc-in", Key: fmt.Appendf(nil, "%d", i)})
	}
	if err := cl.ProduceSync(ctx, in...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var errs []string
	stop := make(chan struct{})
	seeds := func() []string {
		var out []string
		for _, a := range agents {
			out = append(out, a.KafkaAddr())
		}
		return out
	}()
	member := func(id string) {
		for {
			sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(50*time.Millisecond),
				kgo.TransactionalID(id), kgo.ConsumerGroup("txc"), kgo.ConsumeTopics("txc-in"),
				kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.DefaultProduceTopic("txc-out"),
				kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(2000), kgo.RetryTimeout(20*time.Second))
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
				pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
				fs := sess.PollFetches(pctx)
				cancel()
				if err = sess.Begin(); err != nil {
					break
				}
				fs.EachRecord(func(r *kgo.Record) { sess.Produce(ctx, &kgo.Record{Key: r.Key}, nil) })
				_, err = sess.End(ctx, kgo.TryCommit)
			}
			mu.Lock()
			errs = append(errs, fmt.Sprintf("%s: %v", id, err))
			mu.Unlock()
			sess.Close()
			if ctx.Err() != nil {
				return
			}
		}
	}
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { member(fmt.Sprintf("txc-%d", i)) })
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()
	progress := func(adm *kadm.Client) (int64, error) {
		octx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		resps, err := adm.FetchOffsets(octx, "txc")
		if err != nil {
			return -1, err
		}
		var sum int64
		resps.Each(func(o kadm.OffsetResponse) {
			if o.Err == nil && o.At > 0 {
				sum += o.At
			}
		})
		return sum, resps.Error()
	}
	adm := kadm.NewClient(cl)
	groupWait(t, "an eighth of the input committed", func() bool { p, _ := progress(adm); return p >= n/8 })
	var victim *Agent
	for _, a := range agents {
		var sc kmsg.FindCoordinatorResponseCoordinator
		if err := a.findCoordinator(client{}, kind, key, &sc); err == nil && sc.NodeID == a.nodeID(a.cfg.ID) {
			victim = a
		}
	}
	if victim == nil {
		t.Fatalf("no agent coordinates %s", key)
	}
	p, _ := progress(adm)
	t.Logf("crashing %s, the coordinator of %s, at %d of %d", victim.cfg.ID, key, p, n)
	victim.Close()
	victim.etcd.Close()
	var survivors []*Agent
	for _, a := range agents {
		if a != victim {
			survivors = append(survivors, a)
		}
	}
	var last error
	var lastP int64
	deadline := time.Now().Add(90 * time.Second)
	for lastP < n {
		if time.Now().After(deadline) {
			shard := groupShardTP(t, survivors[0], key)
			for _, a := range survivors {
				var sc kmsg.FindCoordinatorResponseCoordinator
				err := a.findCoordinator(client{}, kind, key, &sc)
				l, ok := a.cache.Leader(shard)
				t.Logf("%s: leads shard %v: %v; FindCoordinator %+v %v; view's leader %+v %v", a.cfg.ID, shard, a.lead.leaders.get(shard) != nil, sc, err, l, ok)
			}
			mu.Lock()
			t.Fatalf("after the crash: %d of %d committed (last error %v); session errors %v", lastP, n, last, errs)
		}
		// A new admin client each time: one that used the dead coordinator kept dialing it for
		// OffsetFetch (kgo's cached coordinator of a sharded request), while the members recovered.
		fresh := kgoClient(t, nil, survivors...)
		lastP, last = progress(kadm.NewClient(fresh))
		fresh.Close()
		time.Sleep(100 * time.Millisecond) // polling committed offsets, bounded by the deadline
	}
	close(stop)
	wg.Wait()
	t.Logf("session errors: %v", errs)
	seen := map[string]int{}
	for _, r := range consumeAll(t, survivors, "txc-out", n, kgo.FetchIsolationLevel(kgo.ReadCommitted())) {
		seen[string(r.Key)]++
	}
	for k, c := range seen {
		if c != 1 {
			t.Errorf("key %s read %d times", k, c)
		}
	}
	if len(seen) != n {
		t.Errorf("read %d keys, want %d", len(seen), n)
	}
}
