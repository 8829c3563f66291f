package agent

import (
	"context"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/extcache"
	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/internal/future"
	"github.com/streamhouse/streamhouse/segstore"
)

// maxConcurrentPuts bounds the flushes whose objects are being written at once. Objects are written in
// parallel, but sequenced strictly in flush order.
const maxConcurrentPuts = 4

// pendingAppend is one partition's record batch from one produce request, on its way through the
// write path: buffered, written to S3 inside a flush object, then sequenced by the partition leader.
type pendingAppend struct {
	tp    coord.TP
	topic string
	batch []byte
	crc   uint32            // CRC-32C of batch
	frame *extcache.Backing // the request frame batch is a slice of; nil when batch is its own
	meta  kwire.BatchMeta
	start time.Time
	// logAppendTime is the time a LogAppendTime topic's batch was stamped with; -1 for CreateTime.
	logAppendTime int64
	// txnRev is, for a transactional batch, the revision of its transactional id's key it was
	// verified against (txn_produce.go).
	txnRev int64

	object string // set when the flush is sealed
	extent segstore.Extent

	// res is the offset assigned to the batch's first record, or why it was not appended.
	res future.Future[int64]
}

func (p *pendingAppend) finish(base int64, err error) { p.res.Set(base, err) }

// flush is one sealed buffer: the appends that go into one segment object.
type flush struct {
	appends  []*pendingAppend
	bytes    int64
	sealedAt time.Time
	put      future.Future[struct{}] // the object's write
}

// flusher buffers appends and writes one segment object per flush. It hands sealed flushes, in order,
// to the sequencer.
type flusher struct {
	a *Agent

	mu       sync.Mutex
	cur      []*pendingAppend
	curBytes int64
	first    time.Time     // when the oldest append in cur arrived
	buffered int64         // accepted bytes not yet acknowledged or failed
	space    chan struct{} // closed when buffered shrinks
	closed   bool

	kick   chan struct{} // wakes run: a buffer began, filled up, or must flush now
	force  bool          // flush now regardless of age and size (shutdown)
	sealed chan *flush
	puts   chan struct{} // semaphore of maxConcurrentPuts
	bufs   sync.Pool     // of *[]byte: objects' heads (header and directory)

	// filledAt is when a flush was last sealed holding FlushBytes or more (unix nanoseconds; 0: never):
	// the produce path is saturated (saturated).
	filledAt atomic.Int64
}

// saturatedHold is how long the agent counts as saturated after a flush filled up: a few maintenance
// passes, so that a burst's short lulls do not let tail merges in between its flushes.
const saturatedHold = 2 * time.Second

// saturated reports whether a flush filled up (reached FlushBytes, before its interval or while the
// object writes before it held every slot) within saturatedHold before now: the agent is taking
// produce as fast as it can write it, so its maintenance defers the merges that can wait
// (lifecycle.MaintainConfig.Busy).
func (f *flusher) saturated(now time.Time) bool {
	at := f.filledAt.Load()
	return at != 0 && now.Sub(time.Unix(0, at)) < saturatedHold
}

func newFlusher(a *Agent) *flusher {
	return &flusher{
		a:      a,
		space:  make(chan struct{}),
		kick:   make(chan struct{}, 1),
		sealed: make(chan *flush, 2*maxConcurrentPuts),
		puts:   make(chan struct{}, maxConcurrentPuts),
	}
}

// submit buffers p, waiting while the agent holds MaxBufferedBytes (backpressure on the connection).
func (f *flusher) submit(ctx context.Context, p *pendingAppend) error {
	n := int64(len(p.batch))
	f.mu.Lock()
	for !f.closed && f.buffered > 0 && f.buffered+n > f.a.cfg.MaxBufferedBytes {
		space := f.space
		f.mu.Unlock()
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
		f.mu.Lock()
	}
	defer f.mu.Unlock()
	if f.closed {
		return errShuttingDown
	}
	if len(f.cur) == 0 {
		f.first = time.Now()
		f.wake()
	}
	f.cur = append(f.cur, p)
	f.curBytes += n
	f.buffered += n
	f.a.metrics.bufferedBytes.Set(float64(f.buffered))
	if f.curBytes >= f.a.cfg.FlushBytes {
		f.wake()
	}
	return nil
}

func (f *flusher) wake() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// release returns a finished flush's bytes to the buffer budget.
func (f *flusher) release(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buffered -= n
	f.a.metrics.bufferedBytes.Set(float64(f.buffered))
	close(f.space)
	f.space = make(chan struct{})
}

// drain stops taking appends, flushes what is buffered at once and waits until every buffered append is
// acknowledged or failed, or ctx ends.
func (f *flusher) drain(ctx context.Context) error {
	f.mu.Lock()
	f.closed = true
	f.force = true
	f.mu.Unlock()
	f.wake()
	for {
		f.mu.Lock()
		buffered, space := f.buffered, f.space
		f.mu.Unlock()
		if buffered == 0 {
			return nil
		}
		select {
		case <-space:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run seals flushes when they are due or large enough and starts their object writes, until ctx ends.
// It closes sealed when it returns, which ends the sequencer.
//
// Flushes that time starts keep a cadence of FlushInterval from the previous flush: buffered appends go
// at the first tick after the oldest of them arrived (nextFlush), not a whole interval after it. An
// append waits at most one interval and half of one on average, and time still starts at most one
// flush per interval. (Timing each flush from its first append would make every append wait the whole
// interval, and a client whose requests in flight all wait for one flush, as an idempotent producer's
// five do, send its next ones just after that flush started: each would wait a whole interval more.)
func (f *flusher) run(ctx context.Context, wg *sync.WaitGroup) {
	defer close(f.sealed)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	last := time.Now() // when the previous flush was sealed
	for {
		f.mu.Lock()
		n, size, first, force := len(f.cur), f.curBytes, f.first, f.force
		f.mu.Unlock()
		due := nextFlush(last, first, f.a.cfg.FlushInterval)
		now := time.Now()
		if n > 0 && (force || size >= f.a.cfg.FlushBytes || !now.Before(due)) {
			if !force && size >= f.a.cfg.FlushBytes {
				f.filledAt.Store(now.UnixNano())
			}
			if !f.seal(ctx, wg) {
				return
			}
			last = time.Now()
			continue
		}
		var expire <-chan time.Time
		if n > 0 {
			timer.Reset(due.Sub(now))
			expire = timer.C
		}
		select {
		case <-f.kick:
		case <-expire:
		case <-ctx.Done():
			return
		}
		if expire != nil && !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// nextFlush is when appends buffered since first are due: the first tick of a cadence of every since
// last (the previous flush) at or after first.
func nextFlush(last, first time.Time, every time.Duration) time.Time {
	if !first.After(last) {
		return last.Add(every)
	}
	ticks := (first.Sub(last) + every - 1) / every
	return last.Add(ticks * every)
}

// seal takes the buffered appends as one flush, starts writing its object and queues it for the
// sequencer. It reports false when ctx ended first.
func (f *flusher) seal(ctx context.Context, wg *sync.WaitGroup) bool {
	select {
	case f.puts <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	f.mu.Lock()
	fl := &flush{appends: f.cur, bytes: f.curBytes, sealedAt: time.Now(), put: future.Make[struct{}]()}
	f.cur, f.curBytes = nil, 0
	f.mu.Unlock()

	// Group each partition's batches together in the object, keeping their arrival order.
	sort.SliceStable(fl.appends, func(i, j int) bool { return tpLess(fl.appends[i].tp, fl.appends[j].tp) })
	// The object goes to the store as its head and the batches where they are, in the request frames
	// they arrived in: its bytes are never copied into one buffer here.
	chunks := make([]segstore.Chunk, len(fl.appends))
	parts := make([][]byte, 1, 1+len(fl.appends))
	for i, p := range fl.appends {
		chunks[i] = segstore.Chunk{TopicID: p.tp.Topic, Partition: p.tp.Partition, Data: p.batch, CRC: p.crc}
		parts = append(parts, p.batch)
	}
	buf, _ := f.bufs.Get().(*[]byte)
	if buf == nil {
		buf = new([]byte)
	}
	head, extents := segstore.AppendHead((*buf)[:0], chunks)
	parts[0] = head
	key := segstore.NewObjectKey(f.a.cfg.ID)
	for i, p := range fl.appends {
		p.object, p.extent = key, extents[i]
	}
	f.a.metrics.flushBytes.Observe(float64(int64(len(head)) + fl.bytes))
	f.a.metrics.flushAppends.Observe(float64(len(chunks)))

	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		err := f.a.store.Put(ctx, key, parts...)
		f.a.metrics.flushDuration.WithLabelValues("put").Observe(time.Since(start).Seconds())
		if err != nil {
			f.a.log.Warn("segment write failed; failing its produces", "object", key, "error", err)
		} else {
			f.keep(key, fl.appends)
		}
		*buf = head[:0]
		f.bufs.Put(buf)
		fl.put.Set(struct{}{}, err)
		<-f.puts
	}()
	select {
	case f.sealed <- fl:
		return true
	case <-ctx.Done():
		<-fl.put.Done()
		f.fail(fl, errShuttingDown)
		return false
	}
}

// keep puts the extents just written into the read cache (write-through), so that consumers tailing
// the log are served from memory rather than by GETs of what was just PUT. Each batch stays the slice
// of its produce request's frame that it is; the cache charges the whole frame while any of its
// batches is cached (reader.keep), since one of them keeps all of it in memory.
func (f *flusher) keep(key string, appends []*pendingAppend) {
	if f.a.cfg.CacheBytes <= 0 {
		return
	}
	for _, p := range appends {
		f.a.reader.Keep(coord.Extent{Object: key, Pos: p.extent.Pos, Len: p.extent.Len, CRC: p.extent.CRC}, p.batch, p.frame)
	}
}

// fail answers every append of fl with err.
func (f *flusher) fail(fl *flush, err error) {
	for _, p := range fl.appends {
		p.finish(-1, err)
	}
	f.release(fl.bytes)
}

func tpLess(a, b coord.TP) bool {
	if a.Topic != b.Topic {
		return string(a.Topic[:]) < string(b.Topic[:])
	}
	return a.Partition < b.Partition
}
