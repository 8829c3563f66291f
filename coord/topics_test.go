package coord

import (
	"errors"
	"strconv"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestTopicsCRUD(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	ctx := testCtx(t)

	b := newTopic(t, c, "b", 3)
	if b.ID.IsZero() || b.Partitions != 3 {
		t.Fatalf("created %+v", b)
	}
	a, err := c.CreateTopic(ctx, Topic{Name: "a", Partitions: 1, Configs: map[string]string{"retention.ms": "1000"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateTopic(ctx, Topic{Name: "a", Partitions: 5}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("duplicate create: %v, want ErrTopicExists", err)
	}
	for _, bad := range []Topic{{Name: "", Partitions: 1}, {Name: "x/y", Partitions: 1}, {Name: "z", Partitions: 0}} {
		if _, err := c.CreateTopic(ctx, bad); err == nil {
			t.Errorf("CreateTopic(%+v) succeeded", bad)
		}
	}

	topics, err := c.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(topics) != 2 || topics[0].Name != "a" || topics[1].Name != "b" || topics[0].ID != a.ID {
		t.Fatalf("Topics = %+v", topics)
	}
	if topics[0].Configs["retention.ms"] != "1000" {
		t.Fatalf("configs lost: %+v", topics[0])
	}

	up, err := c.UpdateTopic(ctx, "b", func(t *Topic) error { t.Partitions = 6; return nil })
	if err != nil || up.Partitions != 6 || up.ID != b.ID {
		t.Fatalf("UpdateTopic = %+v, %v", up, err)
	}
	sentinel := errors.New("no thanks")
	if _, err := c.UpdateTopic(ctx, "b", func(*Topic) error { return sentinel }); err != sentinel {
		t.Fatalf("fn error came back as %v", err)
	}
	if _, err := c.UpdateTopic(ctx, "b", func(t *Topic) error { t.ID = NewTopicID(); return nil }); err == nil {
		t.Fatal("UpdateTopic let the id change")
	}
	if _, err := c.UpdateTopic(ctx, "nope", func(*Topic) error { return nil }); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("update unknown: %v", err)
	}

	if err := c.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteTopic(ctx, "a"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("second delete: %v, want ErrUnknownTopic", err)
	}
	if _, err := c.Topic(ctx, "a"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("Topic after delete: %v", err)
	}
	again := newTopic(t, c, "a", 1)
	if again.ID == a.ID {
		t.Fatal("re-created topic kept its old id")
	}
}

func TestDeleteTopicWipesPartitionState(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	ctx := testCtx(t)
	s := newSession(t, c, "a1", "127.0.0.1:9092")
	doomed := newTopic(t, c, "doomed", 2)
	kept := newTopic(t, c, "kept", 1)

	var commits []Commit
	for _, tp := range []TP{doomed.TP(0), doomed.TP(1), kept.TP(0)} {
		epoch, err := rev(s.Acquire(ctx, tp, EpochHint{}))
		if err != nil {
			t.Fatal(err)
		}
		commits = append(commits, Commit{TP: tp, Epoch: epoch, Entry: entry(0, 3, 100),
			Batches: []ProducerBatch{{ID: 1000, FirstSeq: 0, LastSeq: 2, FirstOffset: 0, LastOffset: 2}}})
	}
	for i, err := range s.Commit(ctx, commits) {
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}

	if err := c.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	count := func(prefix string) int64 {
		resp, err := c.Etcd().Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return resp.Count
	}
	for _, prefix := range []string{c.keys.leaders(doomed.ID), c.keys.epochs(doomed.ID)} {
		if n := count(prefix); n != 0 {
			t.Errorf("%d keys left under %s", n, prefix)
		}
	}
	for _, prefix := range []string{c.keys.leaders(kept.ID), c.keys.epochs(kept.ID)} {
		if n := count(prefix); n != 1 {
			t.Errorf("%d keys under %s of the kept topic, want 1", n, prefix)
		}
	}
	// The flush's one record still holds the kept topic's entry: it is live until that one dies too.
	st, _, err := c.loadState(ctx, c.log)
	if err != nil {
		t.Fatal(err)
	}
	if dead := st.deadRecords(); len(dead) != 0 || len(st.records) != 1 || st.parts[kept.TP(0)].hwm != 3 {
		t.Fatalf("after deleting one topic: dead records %v of %d, kept partition %+v", dead, len(st.records), st.parts[kept.TP(0)])
	}
	if err := c.DeleteTopic(ctx, "kept"); err != nil {
		t.Fatal(err)
	}
	if st, _, err = c.loadState(ctx, c.log); err != nil || len(st.deadRecords()) != 1 {
		t.Fatalf("after deleting both topics: dead records %v, %v; want the one", st.deadRecords(), err)
	}
	// The leader of a deleted partition is fenced.
	errs := s.Commit(ctx, []Commit{{TP: doomed.TP(0), Epoch: commits[0].Epoch, Entry: entry(3, 1, 10)}})
	if !errors.Is(errs[0], ErrFenced) {
		t.Fatalf("commit to deleted topic: %v, want ErrFenced", errs[0])
	}
}

func TestUpdateTopicConcurrentCAS(t *testing.T) {
	te := newTestEtcd(t)
	const workers, each = 6, 5
	newTopic(t, te.client(t), "counted", 1)
	var wg sync.WaitGroup
	errc := make(chan error, workers*each)
	for range workers {
		c := te.client(t) // one connection each, as separate agents would have
		wg.Go(func() {
			for range each {
				_, err := c.UpdateTopic(testCtx(t), "counted", func(top *Topic) error {
					if top.Configs == nil {
						top.Configs = map[string]string{}
					}
					n, _ := strconv.Atoi(top.Configs["n"])
					top.Configs["n"] = strconv.Itoa(n + 1)
					return nil
				})
				errc <- err
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}
	top, err := te.client(t).Topic(testCtx(t), "counted")
	if err != nil {
		t.Fatal(err)
	}
	if top.Configs["n"] != strconv.Itoa(workers*each) {
		t.Fatalf("n = %s after %d increments: an update was lost", top.Configs["n"], workers*each)
	}
}

func TestAllocateProducerIDConcurrent(t *testing.T) {
	te := newTestEtcd(t)
	const workers, each = 4, 10
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range workers {
		c := te.client(t)
		wg.Go(func() {
			for range each {
				id, err := c.AllocateProducerID(testCtx(t))
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[id] {
					t.Errorf("producer id %d handed out twice", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for id := int64(FirstProducerID); id < FirstProducerID+workers*each; id++ {
		if !seen[id] {
			t.Errorf("ids not dense: %d missing", id)
		}
	}
}

// Every read of a topic carries its key's create revision, which a topic created again under the
// same name does not share.
func TestTopicRevision(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	ctx := testCtx(t)
	created := newTopic(t, c, "r", 1)
	k := runCache(t, c, nil)
	got, err := c.Topic(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	up, err := c.UpdateTopic(ctx, "r", func(t *Topic) error { t.Revision = 1; t.Partitions = 2; return nil })
	if err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	cached, _ := k.Topic("r")
	listed, err := c.Topics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []int64{got.Revision, up.Revision, cached.Revision, listed[0].Revision} {
		if r != created.Revision || r <= 0 {
			t.Fatalf("revisions %d %d %d %d, want %d as created", got.Revision, up.Revision, cached.Revision, listed[0].Revision, created.Revision)
		}
	}
	if err := c.DeleteTopic(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	if again := newTopic(t, c, "r", 1); again.Revision <= created.Revision {
		t.Fatalf("re-created at revision %d, not after %d", again.Revision, created.Revision)
	}
}

// A partition is acquired only while its topic exists: an acquisition decided from a view taken
// before the topic was deleted (or deleted and created again) writes nothing, so no commit can put
// index or producer keys under the deleted topic's id.
func TestAcquireTopicRefusedOnceDeleted(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	ctx := testCtx(t)
	s := newSession(t, c, "a", "127.0.0.1:1")
	old := newTopic(t, c, "doomed", 2)
	epoch, err := s.AcquireTopic(ctx, old, 0, EpochHint{})
	if err != nil {
		t.Fatal(err)
	}
	if again, err := s.AcquireTopic(ctx, old, 0, EpochHint{}); err != nil || again != epoch {
		t.Fatalf("acquiring a key held: epoch %d, %v; want %d", again, err, epoch)
	}
	if _, err := s.AcquireTopic(ctx, old, 2, EpochHint{}); err == nil {
		t.Fatal("acquired a partition the topic does not have")
	}
	if _, err := s.AcquireTopic(ctx, Topic{Name: old.Name, ID: old.ID, Partitions: 2}, 1, EpochHint{}); err == nil {
		t.Fatal("acquired without the topic's revision")
	}
	if err := c.DeleteTopic(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	for p := range int32(2) {
		if _, err := s.AcquireTopic(ctx, old, p, EpochHint{}); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("partition %d of a deleted topic: %v, want ErrUnknownTopic", p, err)
		}
	}
	recreated := newTopic(t, c, "doomed", 2)
	if _, err := s.AcquireTopic(ctx, old, 1, EpochHint{}); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("a deleted topic re-created under its name: %v, want ErrUnknownTopic", err)
	}
	if _, err := s.AcquireTopic(ctx, recreated, 1, EpochHint{}); err != nil {
		t.Fatalf("the re-created topic: %v", err)
	}
	for _, dir := range []string{c.keys.leaders(old.ID), c.keys.epochs(old.ID), c.keys.producers(old.ID)} {
		resp, err := c.Etcd().Get(ctx, dir, clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		if resp.Count != 0 {
			t.Fatalf("%d keys under %s, want none", resp.Count, dir)
		}
	}
}
