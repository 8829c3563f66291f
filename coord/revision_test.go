package coord

import (
	"testing"
)

// Revision is etcd's current revision: it covers every write made before it, and a cache that
// reaches it sees them.
func TestRevisionCoversEarlierWrites(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	k := runCache(t, c, nil)
	before, err := c.Revision(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	top := newTopic(t, te.client(t), "rev", 1) // written by another client: this one is not told
	rev, err := c.Revision(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if rev <= before {
		t.Fatalf("revision %d after a write, %d before it", rev, before)
	}
	if err := k.WaitRevision(testCtx(t), rev); err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Topic(top.Name); !ok {
		t.Fatalf("a cache at revision %d does not know topic %s, created before it", rev, top.Name)
	}
}
