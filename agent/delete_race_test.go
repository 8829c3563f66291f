package agent

import (
	"context"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/streamhouse/streamhouse/coord"
)

// An agent that decided to lead a partition from a view taken before its topic was deleted acquires
// it after the delete: its leader key, and then the index and producer keys its commits write under
// it, would land under the deleted topic's id, which nothing ever deletes again. The acquisition is
// refused instead: it only succeeds while the topic it was decided for exists.
func TestLeaderKeyNotTakenForDeletedTopic(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a, h := hookedAgent(t, tc, "a1")
	etcd := tc.client()
	entered, release := make(chan coord.TP, 1), newGate(t)
	h.setAcquire(func(ctx context.Context, tp coord.TP) error {
		if tp.Partition != 0 {
			return nil
		}
		if top, ok := a.cache.TopicByID(tp.Topic); !ok || top.Name != "doomed" {
			return nil
		}
		entered <- tp
		<-release.C()
		return nil
	})
	top, err := etcd.CreateTopic(testCtx(t), coord.Topic{Name: "doomed", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	tp := waitChan(t, "the agent to acquire the new partition", entered)
	if tp != top.TP(0) {
		t.Fatalf("acquiring %v, want %v", tp, top.TP(0))
	}
	watch := etcd.Etcd().Watch(testCtx(t), tc.prefix, clientv3.WithPrefix())
	if err := etcd.DeleteTopic(testCtx(t), "doomed"); err != nil {
		t.Fatal(err)
	}
	release.open()
	waitFor(t, "the acquisition to end", func() bool { return goroutinesIn("(*Agent).takeLead") == 0 })

	sentinel := tc.prefix + "sentinel"
	if _, err := etcd.Etcd().Put(testCtx(t), sentinel, "x"); err != nil {
		t.Fatal(err)
	}
	under := []string{"leaders/", "index/", "producers/"}
	for done := false; !done; {
		resp := waitChan(t, "the sentinel's watch event", watch)
		for _, ev := range resp.Events {
			key := string(ev.Kv.Key)
			done = done || key == sentinel
			for _, dir := range under {
				if ev.Type == clientv3.EventTypePut && strings.HasPrefix(key, tc.prefix+dir+top.ID.String()+"/") {
					t.Errorf("written under the deleted topic's id: %s", key)
				}
			}
		}
	}
	if a.lead.leaders.get(tp) != nil {
		t.Error("the agent leads a partition of a deleted topic")
	}
}
