package lifecycle

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/streamhouse/streamhouse/segstore"
)

// GC defaults (docs/INTERNALS.md, "Garbage collection").
const (
	DefaultGCInterval  = time.Minute
	DefaultGCGrace     = 10 * time.Minute
	DefaultGCReadGrace = 2 * time.Minute
)

// Object prefixes GC looks under: flush objects and partition segments.
var gcPrefixes = []string{"seg/", "part/"}

// gcStore is what GC needs of the object store.
type gcStore interface {
	ListObjects(ctx context.Context, prefix string) ([]segstore.ObjectInfo, error)
	Delete(ctx context.Context, key string) error
}

// gcView is what GC needs of the watched view.
type gcView interface {
	WaitRevision(ctx context.Context, rev int64) error
	ReferencedObjects() map[string]int // object → level
	DeadRecords() []string
}

// gcEtcd is what GC needs of etcd besides the view.
type gcEtcd interface {
	Revision(ctx context.Context) (int64, error)
	DeleteRecords(ctx context.Context, keys []string) error
}

// GCConfig configures a GC.
type GCConfig struct {
	Grace     time.Duration // an object younger than this (by its name's ULID) is never deleted
	ReadGrace time.Duration // nor one found unreferenced less than this ago
	Logger    hclog.Logger
	Metrics   *Metrics
	Now       func() time.Time // nil: time.Now
}

// GC deletes what nothing references any more: dead commit records in etcd, and objects in the bucket
// that no live index entry names, old enough that no commit can still make them visible and
// unreferenced long enough that no read can still want them. Pass is safe to run by several agents at
// once; the agent runs it on one (the holder of the GC key) to avoid duplicate work.
type GC struct {
	cfg   GCConfig
	store gcStore
	view  gcView
	etcd  gcEtcd
	// unrefSince is when each object was first found unreferenced, by this GC. It holds garbage only,
	// and forgets what the bucket no longer lists.
	unrefSince map[string]time.Time
}

// NewGC wires a GC; it starts nothing.
func NewGC(cfg GCConfig, store gcStore, view gcView, etcd gcEtcd) *GC {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	return &GC{cfg: cfg, store: store, view: view, etcd: etcd, unrefSince: map[string]time.Time{}}
}

// PassResult is what one pass found and did.
type PassResult struct {
	DeadRecords   int   // commit records deleted from etcd
	Objects       int   // objects listed
	Bytes         int64 // their bytes
	Unreferenced  int   // objects no live entry names (young ones included)
	OrphanedBytes int64 // their bytes
	Deleted       int   // objects deleted
	DeletedBytes  int64
	Levels        map[int]*LevelCount // referenced objects by level: 0 for flush objects, then segments'
}

// LevelCount is the objects of one level and their bytes.
type LevelCount struct {
	Objects int
	Bytes   int64
}

// Pass runs one collection: dead records first, then the bucket. Why a referenced object is never
// deleted: the references are read once the view reflects a revision read after the listing, so every
// object committed before the listing ended is referenced in it; an object committed later was written
// less than half the grace period before its commit (the sequencer and merges refuse older ones), so it
// is younger than the grace period and is kept; and an object whose reference went away is kept for
// the read grace after GC first saw it unreferenced, longer than any read of the index before then takes.
func (g *GC) Pass(ctx context.Context) (PassResult, error) {
	var res PassResult
	if dead := g.view.DeadRecords(); len(dead) > 0 {
		if err := g.etcd.DeleteRecords(ctx, dead); err != nil {
			return res, err
		}
		res.DeadRecords = len(dead)
		g.cfg.Metrics.deadRecords.Add(float64(len(dead)))
	}
	var objects []segstore.ObjectInfo
	for _, prefix := range gcPrefixes {
		objs, err := g.store.ListObjects(ctx, prefix)
		if err != nil {
			return res, err
		}
		objects = append(objects, objs...)
	}
	rev, err := g.etcd.Revision(ctx)
	if err != nil {
		return res, err
	}
	if err := g.view.WaitRevision(ctx, rev); err != nil {
		return res, err
	}
	refs := g.view.ReferencedObjects()
	err = g.sweep(ctx, objects, refs, &res)
	g.cfg.Metrics.observePass(res)
	return res, err
}

// sweep deletes the objects that are old, unreferenced, and were unreferenced a read grace ago.
func (g *GC) sweep(ctx context.Context, objects []segstore.ObjectInfo, refs map[string]int, res *PassResult) error {
	now := g.cfg.Now()
	listed := make(map[string]bool, len(objects))
	res.Levels = map[int]*LevelCount{}
	for _, level := range refs {
		if res.Levels[level] == nil {
			res.Levels[level] = &LevelCount{}
		}
	}
	var errs []error
	for _, o := range objects {
		listed[o.Key] = true
		res.Objects++
		res.Bytes += o.Size
		if level, ok := refs[o.Key]; ok {
			res.Levels[level].Objects++
			res.Levels[level].Bytes += o.Size
			delete(g.unrefSince, o.Key)
			continue
		}
		res.Unreferenced++
		res.OrphanedBytes += o.Size
		written, ok := segstore.ObjectTime(o.Key)
		if !ok || now.Sub(written) < g.cfg.Grace {
			continue
		}
		first, seen := g.unrefSince[o.Key]
		if !seen {
			g.unrefSince[o.Key] = now
			continue
		}
		if now.Sub(first) < g.cfg.ReadGrace {
			continue
		}
		if err := g.store.Delete(ctx, o.Key); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(g.unrefSince, o.Key)
		res.Deleted++
		res.DeletedBytes += o.Size
	}
	for key := range g.unrefSince {
		if !listed[key] {
			delete(g.unrefSince, key)
		}
	}
	return errors.Join(errs...)
}
