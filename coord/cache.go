package coord

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// loadPageSize bounds one Get of the initial load; pages are read at one revision.
const loadPageSize = 5000

// Cache is one watched, in-memory view of everything under the prefix that agents read on hot
// paths: topics, agents, leaders and every partition's index. Reads never touch etcd.
type Cache struct {
	c     *Client
	log   hclog.Logger
	ready chan struct{}

	// afterLoad, if set (tests), runs after each full load, before the watch starts.
	afterLoad func(rev int64)

	mu       sync.RWMutex
	st       *state
	rev      int64         // revision the view reflects
	changed  chan struct{} // closed and replaced when topics, agents or leaders change
	progress chan struct{} // closed and replaced when rev advances
	watcher  clientv3.Watcher

	// secGen is the security generation (SecurityGeneration): bumped by every change of
	// credentials, ACLs or quotas, and by every load.
	secGen atomic.Uint64
}

// NewCache returns an empty cache; Run fills it and keeps it fresh. A nil logger means the
// client's.
func (c *Client) NewCache(logger hclog.Logger) *Cache {
	log := c.log.Named("cache")
	if logger != nil {
		log = logger.Named("coord").Named("cache")
	}
	return &Cache{
		c:        c,
		log:      log,
		ready:    make(chan struct{}),
		st:       newState(c.keys, log),
		changed:  make(chan struct{}),
		progress: make(chan struct{}),
	}
}

// Run loads everything under the prefix, then watches from the next revision until ctx is
// done, and returns nil then. If etcd compacted the revisions the watch still needed, it loads
// afresh; if the watch breaks otherwise, it resumes where it was. Call Run once.
func (k *Cache) Run(ctx context.Context) error {
	w := clientv3.NewWatcher(k.c.etcd)
	defer func() {
		k.mu.Lock()
		k.watcher = nil
		k.mu.Unlock()
		_ = w.Close()
	}()
	needLoad, failures := true, 0
	for {
		if needLoad {
			if err := k.reload(ctx); err != nil {
				return k.stopped(ctx, err)
			}
			needLoad, failures = false, 0
		}
		compacted, err := k.watch(ctx, w)
		if ctx.Err() != nil {
			return nil
		}
		if compacted {
			k.log.Info("watch fell behind etcd compaction; reloading")
			needLoad = true
			continue
		}
		failures++
		k.log.Warn("watch broke; resuming", "error", err, "rev", k.Revision())
		if err := k.backoff(ctx, failures); err != nil {
			return k.stopped(ctx, err)
		}
	}
}

// stopped maps Run's end: nil when ctx ended it.
func (k *Cache) stopped(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// backoff waits 50ms·2^n, at most 5s, unless ctx or the client ends first.
func (k *Cache) backoff(ctx context.Context, failures int) error {
	d := min(50*time.Millisecond<<min(failures, 7), 5*time.Second)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-k.c.etcd.Ctx().Done():
		return errors.New("coord: cache: etcd client closed")
	}
}

// reload reads the whole prefix, retrying until it succeeds, ctx ends or the client closes.
func (k *Cache) reload(ctx context.Context) error {
	for failures := 1; ; failures++ {
		start := time.Now()
		st, rev, err := k.load(ctx)
		if err == nil {
			k.c.metrics.observeQuery(ctx, opCacheLoad, start)
			k.swap(st, rev)
			if k.afterLoad != nil {
				k.afterLoad(rev)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		k.log.Warn("loading metadata from etcd failed; retrying", "error", err)
		if err := k.backoff(ctx, failures); err != nil {
			return err
		}
	}
}

// load reads every key under the prefix, page by page at one revision, into a fresh state.
func (k *Cache) load(ctx context.Context) (*state, int64, error) {
	st, rev, err := k.c.loadState(ctx, k.log)
	if err != nil {
		return nil, 0, fmt.Errorf("coord: cache: load: %w", err)
	}
	return st, rev, nil
}

// loadState reads every key under the prefix, page by page at one revision, into a fresh state.
func (c *Client) loadState(ctx context.Context, log hclog.Logger) (*state, int64, error) {
	prefix := c.keys.prefix
	end := clientv3.GetPrefixRangeEnd(prefix)
	var kvs []*mvccpb.KeyValue
	var rev int64
	for key := prefix; ; {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(loadPageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.etcd.Get(ctx, key, opts...)
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		kvs = append(kvs, resp.Kvs...)
		if !resp.More || len(resp.Kvs) == 0 {
			break
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
	st := newState(c.keys, log)
	st.loadAll(kvs)
	return st, rev, nil
}

// swap installs a freshly loaded state. Waiters carry over: they are woken where the high
// watermark moved or the partition went away. Entries the leader applied beyond what the load
// saw are kept where they continue the loaded log, so a high watermark never goes back; entries
// the load no longer saw below its log start were deleted (retention) and are not.
func (k *Cache) swap(ns *state, rev int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for tp, op := range k.st.parts {
		np := ns.part(tp, true)
		if np == nil {
			close(op.wait)
			continue
		}
		for _, te := range op.tail {
			if te.BaseOffset >= np.hwm {
				te.rec = nil // the new state's record, if any, comes by watch
				np.addTail(te, tp, false, k.log)
			}
		}
		if np.hwm != op.hwm {
			close(op.wait)
		} else {
			np.wait = op.wait // np's own channel is new: nobody holds it
		}
	}
	ns.sec.changed = false // the load's puts: the bump below covers them
	k.st = ns
	k.setRev(rev)
	k.fireChanged()
	k.secGen.Add(1)
	select {
	case <-k.ready:
	default:
		close(k.ready)
	}
}

// watch follows the prefix from the revision after the view's until the watch ends. It reports
// whether it ended because etcd had compacted the revisions it needed.
func (k *Cache) watch(ctx context.Context, w clientv3.Watcher) (compacted bool, err error) {
	// Require a leader: a member cut off from its cluster must not serve a silently stale view.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	k.mu.Lock()
	k.watcher = w
	from := k.rev + 1
	k.mu.Unlock()
	for resp := range w.Watch(wctx, k.c.keys.prefix, clientv3.WithPrefix(), clientv3.WithRev(from)) {
		if resp.CompactRevision != 0 {
			return true, nil
		}
		if err := resp.Err(); err != nil {
			return false, err
		}
		k.apply(&resp)
	}
	return false, errors.New("watch channel closed")
}

// apply applies one watch response under the lock, so readers never see half a Txn.
func (k *Cache) apply(resp *clientv3.WatchResponse) {
	k.mu.Lock()
	defer k.mu.Unlock()
	rev := resp.Header.Revision
	if len(resp.Events) > 0 {
		// The header may be ahead of the events when a lagging watcher catches up in batches.
		rev = resp.Events[len(resp.Events)-1].Kv.ModRevision
	}
	changed := false
	for _, ev := range resp.Events {
		switch ev.Type {
		case clientv3.EventTypePut:
			changed = k.st.put(ev.Kv) || changed
		case clientv3.EventTypeDelete:
			changed = k.st.del(string(ev.Kv.Key)) || changed
		}
	}
	if changed {
		k.fireChanged()
	}
	if k.st.sec.changed {
		k.st.sec.changed = false
		k.secGen.Add(1)
	}
	if rev > k.rev {
		k.setRev(rev)
	}
}

// setRev and fireChanged are called with mu held.
func (k *Cache) setRev(rev int64) {
	k.rev = rev
	close(k.progress)
	k.progress = make(chan struct{})
}

func (k *Cache) fireChanged() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// Ready is closed once the first load is in.
func (k *Cache) Ready() <-chan struct{} { return k.ready }

// Changed is closed at the next change of topics, agents or leaders (or a reload). Take it
// before reading what it guards so that no change slips in between.
func (k *Cache) Changed() <-chan struct{} {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.changed
}

// Revision is the etcd revision the view reflects.
func (k *Cache) Revision() int64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.rev
}

// WaitRevision waits until the view reflects at least revision rev (say, the header revision
// of a write this process made), asking etcd for watch progress when no event would tell.
func (k *Cache) WaitRevision(ctx context.Context, rev int64) error {
	for asked := false; ; {
		k.mu.RLock()
		cur, progress, w := k.rev, k.progress, k.watcher
		k.mu.RUnlock()
		if cur >= rev {
			return nil
		}
		if w != nil && !asked {
			// Same metadata as the watch's context, so etcd answers on the watch's stream.
			asked = w.RequestProgress(clientv3.WithRequireLeader(ctx)) == nil
		}
		select {
		case <-progress:
			asked = false
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// NextProducerID is pid/next as the view last saw it: every producer id below it has been handed out
// by AllocateProducerID (one handed out a moment ago elsewhere may not be seen yet: ask
// Client.NextProducerID).
func (k *Cache) NextProducerID() int64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.st.pidNext
}

// Topics lists the topics, sorted by name.
func (k *Cache) Topics() []Topic {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]Topic, 0, len(k.st.topics))
	for _, t := range k.st.topics {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic looks a topic up by name.
func (k *Cache) Topic(name string) (Topic, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	t, ok := k.st.topics[name]
	return t, ok
}

// TopicByID looks a topic up by id.
func (k *Cache) TopicByID(id TopicID) (Topic, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	name, ok := k.st.byID[id]
	if !ok {
		return Topic{}, false
	}
	return k.st.topics[name], true
}

// Agents lists the live agents, sorted by id.
func (k *Cache) Agents() []AgentInfo {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := make([]AgentInfo, 0, len(k.st.agents))
	for _, a := range k.st.agents {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Leader describes a partition's leader key.
type Leader struct {
	Agent string // the holder's agent id
	Rev   int64  // the key's create revision: the fencing epoch its commits are guarded by
	Epoch int32  // the leader epoch clients are told (it only grows)
}

// Leader returns tp's leader, if it has one.
func (k *Cache) Leader(tp TP) (Leader, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	l, ok := k.st.leaders[tp]
	return Leader{Agent: l.agent, Rev: l.rev, Epoch: l.epoch}, ok
}

// PartitionState is what a partition's new leader sequences from.
type PartitionState struct {
	Next      int64           // the high watermark
	Producers []ProducerState // rebuilt from snapshots and the uncompacted entries, sorted by id
}

// PartitionState returns tp's next offset and producer states as the view holds them. A new leader
// calls it once the view reflects the revision its leader key was created at (WaitRevision): no
// commit of an older epoch can apply after that, so the state is final for those epochs. ok is false
// when tp does not exist.
func (k *Cache) PartitionState(tp TP) (PartitionState, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if _, ok := k.st.byID[tp.Topic]; !ok {
		return PartitionState{}, false
	}
	p := k.st.parts[tp]
	if p == nil {
		return PartitionState{}, true
	}
	return PartitionState{Next: p.hwm, Producers: p.producerStates()}, true
}

// EpochHint is what the view says of tp's leader epoch counter, for Session.Acquire.
func (k *Cache) EpochHint(tp TP) EpochHint {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if p := k.st.parts[tp]; p != nil {
		return EpochHint{Epoch: p.epoch, Rev: p.epochRev, Floor: p.lastEpoch()}
	}
	return EpochHint{}
}

// DeadRecords lists the commit records (and legacy index keys) none of whose entries is live any
// more: covered by segments, below the log start, or of a deleted topic. Once dead, a record stays
// dead, so deleting its key needs no compare.
func (k *Cache) DeadRecords() []string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return k.st.deadRecords()
}

// Apply adds an entry the caller just committed, so that its own reads see it at once; give it
// as committed, with its Epoch (Bytes is filled in if zero). The same entry arriving by watch,
// before or after, is not added twice; an entry that does not start at the high watermark is
// ignored. The entry carries no producer batches (a marker's): a flush's commits go through ApplyAll.
func (k *Cache) Apply(tp TP, e IndexEntry) {
	if e.Bytes == 0 {
		for _, x := range e.Extents {
			e.Bytes += int64(x.Len)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if p := k.st.part(tp, true); p != nil {
		p.addTail(tailEntry{IndexEntry: e}, tp, false, k.log)
	}
}

// ApplyAll is Apply of each commit's entry, under one lock: a flush over many partitions applies them
// all at once, rather than taking the view's lock once per partition while fetches wait on it. Each
// entry goes in with its commit's producer batches, as the watch would bring it: what the view derives
// from them must hold from the moment the entry is readable (a transactional batch opens its
// transaction, so the last stable offset stops there; producer states and merge plans see it).
func (k *Cache) ApplyAll(commits []Commit) {
	now := time.Now().UnixMilli()
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, c := range commits {
		e := c.Entry
		if e.Bytes == 0 {
			for _, x := range e.Extents {
				e.Bytes += int64(x.Len)
			}
		}
		if p := k.st.part(c.TP, true); p != nil {
			p.addTail(tailEntry{IndexEntry: e, batches: c.Batches, time: now}, c.TP, false, k.log)
		}
	}
}

// HighWatermark is tp's next offset (0 if empty or unknown).
func (k *Cache) HighWatermark(tp TP) int64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if p := k.st.parts[tp]; p != nil {
		return p.hwm
	}
	return 0
}

// LogStart is the first offset tp holds (0 if empty or unknown).
func (k *Cache) LogStart(tp TP) int64 {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if p := k.st.parts[tp]; p != nil {
		return p.logStart()
	}
	return 0
}

// Entries returns the entries from the one containing offset from, stopping once their Bytes
// add up to maxBytes; at least one if any contains from, none otherwise. The entries are
// copies, but their Extents are shared: do not modify them.
func (k *Cache) Entries(tp TP, from int64, maxBytes int64) []IndexEntry {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if p := k.st.parts[tp]; p != nil {
		return p.read(from, maxBytes)
	}
	return nil
}

// EpochEnd answers Kafka's OffsetForLeaderEpoch for tp: the end of epoch, that is the first offset
// committed under a later epoch, or the high watermark when no later epoch has committed; and the
// largest epoch at most epoch that committed an entry still held (epoch itself when none is). Epochs
// only grow along a partition's offsets (a leader commits only under the newest leader key), and no
// offset is ever rewritten, so a consumer's position never lies past the end of the epoch it read.
// ok is false when tp does not exist.
func (k *Cache) EpochEnd(tp TP, epoch int64) (leaderEpoch, end int64, ok bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if _, ok := k.st.byID[tp.Topic]; !ok {
		return 0, 0, false
	}
	p := k.st.parts[tp]
	if p == nil {
		return epoch, 0, true
	}
	leaderEpoch, end = p.epochEnd(epoch)
	return leaderEpoch, end, true
}

// closedChan is returned to waiters on partitions that do not exist.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Wait returns a channel closed when tp's high watermark next advances or tp goes away; it is
// closed already if tp does not exist. Take it before reading the high watermark, or use
// WaitAdvance, so that an advance cannot slip in between.
func (k *Cache) Wait(tp TP) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p := k.st.part(tp, true); p != nil {
		return p.wait
	}
	return closedChan
}

// WaitAdvance is Wait, but closed at once if the high watermark is no longer hwm.
func (k *Cache) WaitAdvance(tp TP, hwm int64) <-chan struct{} {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p := k.st.part(tp, true); p != nil && p.hwm == hwm {
		return p.wait
	}
	return closedChan
}

// TailEntry is an uncompacted entry as partition maintenance plans from it.
type TailEntry struct {
	IndexEntry
	Time    int64 // unix ms its record was committed; 0 until the watch brought the record
	Batches []ProducerBatch
}

// PartitionIndex is a copy of one partition's index, for its leader's maintenance.
type PartitionIndex struct {
	LogStart      int64
	HighWatermark int64
	// Unstable is set when a transaction is open: Stable, the last stable offset, is below the high
	// watermark, and merges and retention stay below it (an open transaction's records stay in the
	// tail until its marker).
	Unstable bool
	Stable   int64
	Segments []IndexEntry // sorted, contiguous
	Tail     []TailEntry  // sorted, contiguous, after the segments
}

// PartitionIndex returns a copy of tp's index; ok is false when tp does not exist.
func (k *Cache) PartitionIndex(tp TP) (PartitionIndex, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	if _, ok := k.st.byID[tp.Topic]; !ok {
		return PartitionIndex{}, false
	}
	p := k.st.parts[tp]
	if p == nil {
		return PartitionIndex{}, true
	}
	pi := PartitionIndex{LogStart: p.logStart(), HighWatermark: p.hwm, Stable: p.stable(), Segments: slices.Clone(p.segs),
		Tail: make([]TailEntry, len(p.tail))}
	pi.Unstable = pi.Stable < pi.HighWatermark
	for i, te := range p.tail {
		pi.Tail[i] = TailEntry{IndexEntry: te.IndexEntry, Time: te.time, Batches: te.batches}
	}
	return pi, true
}

// ReferencedObjects lists every object a live entry of the view references, with its level: flush
// objects of uncompacted entries (0) and partition segments (their level). GC deletes only objects
// outside it.
func (k *Cache) ReferencedObjects() map[string]int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	out := map[string]int{}
	for _, p := range k.st.parts {
		for _, s := range p.segs {
			out[s.Segment.Object] = s.Segment.Level
		}
		for _, te := range p.tail {
			for _, x := range te.Extents {
				out[x.Object] = 0
			}
		}
	}
	return out
}
