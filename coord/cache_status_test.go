package coord

import (
	"context"
	"reflect"
	"testing"
	"time"
)

// The view's Status is Client.Status without the lease TTLs, read from memory.
func TestCacheStatus(t *testing.T) {
	te := newTestEtcd(t)
	ctx := testCtx(t)
	c := te.client(t)
	k := runCache(t, te.client(t), nil)

	a, err := c.Register(ctx, AgentInfo{ID: "a", Addr: "127.0.0.1:1", AZ: "az2", Group: "g"}, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close(context.Background())
	orders := newTopic(t, c, "orders", 3)
	epoch, err := rev(a.Acquire(ctx, orders.TP(1), EpochHint{}))
	if err != nil {
		t.Fatal(err)
	}
	commit(t, a, orders.TP(1), epoch, entry(0, 10, 100), entry(10, 5, 50))

	want, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want.Agents {
		want.Agents[i].TTLSeconds = 0
	}
	r, err := c.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.WaitRevision(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := k.Status(); !reflect.DeepEqual(got, want) {
		t.Errorf("view status = %s,\nwant %s", mustJSON(t, got), mustJSON(t, want))
	}
	if got := mustJSON(t, k.Status().Partitions[1]); got != `{"topic":"orders","partition":1,"leader":"a","epoch":1,"log_start":0,`+
		`"next_offset":15,"bytes":150,"segments":0,"tail":2,"objects":2}` {
		t.Errorf("orders/1 = %s", got)
	}
}
