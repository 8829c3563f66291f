package coord

import "testing"

// The watched view carries pid/next, the first producer id not yet handed out, from its load and then
// from the watch; NextProducerID reads it from etcd itself.
func TestCacheNextProducerID(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	first, err := c.AllocateProducerID(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	k := runCache(t, c, nil)
	if got := k.NextProducerID(); got != first+1 {
		t.Fatalf("view after load: next producer id %d, want %d", got, first+1)
	}
	second, err := c.AllocateProducerID(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	if got := k.NextProducerID(); got != second+1 {
		t.Fatalf("view after watch: next producer id %d, want %d", got, second+1)
	}
	if got, err := c.NextProducerID(testCtx(t)); err != nil || got != second+1 {
		t.Fatalf("NextProducerID = %d, %v; want %d", got, err, second+1)
	}
}

// Before any id is handed out, the next is FirstProducerID.
func TestNextProducerIDFresh(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	k := runCache(t, c, nil)
	if got := k.NextProducerID(); got != FirstProducerID {
		t.Fatalf("view: %d, want %d", got, FirstProducerID)
	}
	if got, err := c.NextProducerID(testCtx(t)); err != nil || got != FirstProducerID {
		t.Fatalf("NextProducerID = %d, %v; want %d", got, err, FirstProducerID)
	}
}
