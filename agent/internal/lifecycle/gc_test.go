package lifecycle

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/segstore"
)

// fakeView is a view whose references and dead records the test sets. It checks that GC reads the
// references only once the view reached the revision GC asked for.
type fakeView struct {
	t       *testing.T
	reached int64
	want    int64
	refs    map[string]int
	dead    []string
}

func (v *fakeView) WaitRevision(_ context.Context, rev int64) error {
	v.reached = rev
	return nil
}

func (v *fakeView) ReferencedObjects() map[string]int {
	if v.reached < v.want {
		v.t.Fatalf("references read at revision %d, before the view reached %d (read after the listing)", v.reached, v.want)
	}
	return v.refs
}

func (v *fakeView) DeadRecords() []string { return v.dead }

// fakeEtcd hands out increasing revisions and records the records deleted.
type fakeEtcd struct {
	view    *fakeView
	rev     int64
	deleted []string
	err     error
}

func (e *fakeEtcd) Revision(context.Context) (int64, error) {
	e.rev++
	e.view.want = e.rev
	return e.rev, e.err
}

func (e *fakeEtcd) DeleteRecords(_ context.Context, keys []string) error {
	e.deleted = append(e.deleted, keys...)
	return nil
}

type gcFixture struct {
	store *segstore.Memory
	view  *fakeView
	etcd  *fakeEtcd
	gc    *GC
	now   time.Time
}

func newGCFixture(t *testing.T) *gcFixture {
	f := &gcFixture{store: segstore.NewMemory(), now: time.Now()}
	f.view = &fakeView{t: t, refs: map[string]int{}}
	f.etcd = &fakeEtcd{view: f.view}
	f.gc = NewGC(GCConfig{Grace: 10 * time.Minute, ReadGrace: 2 * time.Minute, Now: func() time.Time { return f.now }},
		f.store, f.view, f.etcd)
	return f
}

func (f *gcFixture) put(t *testing.T, key string) string {
	t.Helper()
	if err := f.store.Put(context.Background(), key, []byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	return key
}

func (f *gcFixture) pass(t *testing.T) PassResult {
	t.Helper()
	res, err := f.gc.Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (f *gcFixture) exists(key string) bool {
	_, err := f.store.Get(context.Background(), key)
	return !errors.Is(err, segstore.ErrNotFound)
}

// GC deletes an object only once it is unreferenced, older than the grace period, and was found
// unreferenced a read grace earlier; never a referenced one, a young one, or one that is not ours.
func TestGCDeletesOnlyOldUnreferencedObjects(t *testing.T) {
	t.Parallel()
	f := newGCFixture(t)
	referenced := f.put(t, segstore.NewObjectKey("a1"))
	orphan := f.put(t, segstore.NewObjectKey("a1"))
	segment := f.put(t, segstore.NewPartKey([16]byte{1}, 0, "a1"))
	foreign := f.put(t, "seg/not-a-ulid")
	f.view.refs[referenced] = 0
	f.view.refs[segment] = 2
	f.view.dead = []string{"/p/commits/dead"}

	res := f.pass(t) // everything is young
	if res.Deleted != 0 || res.Unreferenced != 2 || res.Levels[0].Objects != 1 || res.Levels[2].Objects != 1 {
		t.Fatalf("first pass: %+v", res)
	}
	if !slices.Equal(f.etcd.deleted, []string{"/p/commits/dead"}) {
		t.Fatalf("dead records deleted: %v", f.etcd.deleted)
	}

	f.now = f.now.Add(11 * time.Minute) // past the grace period: the orphan is noted, not deleted
	if res := f.pass(t); res.Deleted != 0 {
		t.Fatalf("deleted on the pass that first found it old and unreferenced: %+v", res)
	}
	f.now = f.now.Add(time.Minute) // within the read grace
	if res := f.pass(t); res.Deleted != 0 {
		t.Fatalf("deleted within the read grace: %+v", res)
	}
	f.now = f.now.Add(90 * time.Second)
	if res := f.pass(t); res.Deleted != 1 || res.DeletedBytes != 10 {
		t.Fatalf("after the read grace: %+v, want the orphan deleted", res)
	}
	for key, want := range map[string]bool{referenced: true, orphan: false, segment: true, foreign: true} {
		if f.exists(key) != want {
			t.Errorf("%s exists: %v, want %v", key, !want, want)
		}
	}

	// An object referenced again meanwhile starts its count afresh once unreferenced.
	late := f.put(t, segstore.NewObjectKey("a2"))
	f.now = f.now.Add(11 * time.Minute)
	f.pass(t) // noted
	f.view.refs[late] = 0
	f.now = f.now.Add(3 * time.Minute)
	f.pass(t) // referenced: forgotten
	delete(f.view.refs, late)
	f.now = f.now.Add(3 * time.Minute)
	if res := f.pass(t); res.Deleted != 0 || !f.exists(late) {
		t.Fatalf("deleted an object on its first unreferenced pass after being referenced: %+v", res)
	}
}

// A pass that cannot learn etcd's revision deletes nothing: without it, the view might miss commits
// made before the listing.
func TestGCWithoutRevisionDeletesNothing(t *testing.T) {
	t.Parallel()
	f := newGCFixture(t)
	orphan := f.put(t, segstore.NewObjectKey("a1"))
	f.now = f.now.Add(time.Hour)
	f.pass(t)
	f.now = f.now.Add(time.Hour)
	f.etcd.err = errors.New("etcd unreachable")
	if _, err := f.gc.Pass(context.Background()); err == nil {
		t.Fatal("a pass without etcd's revision succeeded")
	}
	if !f.exists(orphan) {
		t.Fatal("an object was deleted without etcd's revision")
	}
}
