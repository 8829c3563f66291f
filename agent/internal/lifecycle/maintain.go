package lifecycle

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// Lead is a partition this agent leads, as its maintenance needs it.
type Lead struct {
	TP    coord.TP
	Topic coord.Topic // whose configs make its Policy
	Epoch int64       // the fencing epoch its writes compare
}

// Writer is what maintenance writes with: the session the leads are held under (coord.Session).
type Writer interface {
	WriteSegment(ctx context.Context, tp coord.TP, epoch int64, seg coord.IndexEntry, replaced []int64) (int64, error)
	MoveLogStart(ctx context.Context, tp coord.TP, epoch, offset int64, below []int64) (int64, error)
	WriteProducers(ctx context.Context, tp coord.TP, epoch int64, put []coord.ProducerState, expired []int64) (int64, error)
}

// mView is what maintenance reads of the watched view.
type mView interface {
	PartitionIndex(tp coord.TP) (coord.PartitionIndex, bool)
	PartitionState(tp coord.TP) (coord.PartitionState, bool)
	// TxnState is tp's last stable offset and its aborted transactions whose markers are at or after from.
	TxnState(tp coord.TP, from int64) (lso int64, aborted []coord.AbortedTxn)
	WaitRevision(ctx context.Context, rev int64) error
}

// Extents reads stored extents, checked against their CRC (the agent's read cache).
type Extents interface {
	Extent(ctx context.Context, x coord.Extent) ([]byte, error)
	// ReadAll reads xs, extents of any objects, with as few GETs as it can (those of one object close
	// together by one), and keeps them cached for a while.
	ReadAll(ctx context.Context, xs []coord.Extent) ([][]byte, error)
}

// mStore is what maintenance needs of the object store.
type mStore interface {
	segstore.Reader
	Put(ctx context.Context, key string, parts ...[]byte) error
	PutReader(ctx context.Context, key string, size int64, r io.Reader) error
}

// PatchFunc copies the record batches of src into dst, giving them consecutive offsets from base and
// the leader epoch, and returns dst and the offset after the last batch (the agent's batch patcher).
type PatchFunc func(dst, src []byte, base int64, epoch int32) ([]byte, int64, error)

// MaintainConfig configures a Maintainer.
type MaintainConfig struct {
	AgentID string
	// Grace is GC's grace period: a segment must be committed within half of it after its object was
	// written, or GC could delete the object first (docs/INTERNALS.md, "Garbage collection").
	Grace  time.Duration
	Policy func(coord.Topic) Policy
	// ProducerExpiration forgets a producer whose last batch on a partition is older (Kafka's
	// producer.id.expiration.ms); 0 never does.
	ProducerExpiration time.Duration
	// MaxProducers is the most producers whose snapshots a partition keeps: the most recently
	// written; 0 keeps all.
	MaxProducers int
	// PrefetchBytes bounds the extents a pass reads ahead, in one go, for the tail merges it is about
	// to make, so that a flush object holding batches of many of the partitions is read once, not once
	// per partition; they must fit in the read cache until merged. 0 reads each merge's own.
	PrefetchBytes int64
	// CleanerMemory bounds a compacted partition's key map, in bytes (0: DefaultCleanerMemory);
	// MaxBatchBytes bounds a batch's decompressed records (0: DefaultMaxBatchBytes).
	CleanerMemory int64
	MaxBatchBytes int64
	Patch         PatchFunc
	// Marker makes the control batch of a transaction marker's entry (it holds no extents); nil: a
	// tail with a marker is not merged.
	Marker func(dst []byte, e coord.IndexEntry) []byte
	// Busy reports whether the agent's produce path is saturated; while it is, partitions follow their
	// Policy.Busy (tail merges due by entry count wait for more entries). nil: never.
	Busy    func() bool
	Logger  hclog.Logger
	Metrics *Metrics
	Now     func() time.Time // nil: time.Now
}

// ErrStale is the error of a step abandoned because it could not be committed while its object was
// young enough for GC to spare it.
var ErrStale = errors.New("lifecycle: a merge's object grew too old to commit")

// maxSteps bounds the steps one partition takes in one Maintain: the rest waits for the next pass.
const maxSteps = 16

// Maintainer carries out a partition's maintenance steps (Next) for its leader: merges, retention,
// DeleteRecords. Steps of one partition run one at a time.
type Maintainer struct {
	cfg     MaintainConfig
	view    mView
	extents Extents
	store   mStore

	mu      sync.Mutex
	locks   map[coord.TP]*sync.Mutex
	dirty   map[coord.TP]string    // compacted partitions whose dirty ratio is exported, and their topics
	checked map[coord.TP]time.Time // when each partition's producers were last checked for expiry

	cleaning chan struct{} // one clean at a time: the key map's memory bound is per agent
}

// NewMaintainer wires a Maintainer; it starts nothing.
func NewMaintainer(cfg MaintainConfig, view mView, extents Extents, store mStore) *Maintainer {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics(nil)
	}
	if cfg.Policy == nil {
		cfg.Policy = func(coord.Topic) Policy { return DefaultPolicy() }
	}
	return &Maintainer{cfg: cfg, view: view, extents: extents, store: store, locks: map[coord.TP]*sync.Mutex{},
		dirty: map[coord.TP]string{}, checked: map[coord.TP]time.Time{}, cleaning: make(chan struct{}, 1)}
}

// policy is the Policy a partition of topic follows now: the topic's, or its Busy form while the
// agent's produce path is saturated.
func (m *Maintainer) policy(topic coord.Topic) Policy {
	p := m.cfg.Policy(topic)
	if m.cfg.Busy != nil && m.cfg.Busy() {
		return p.Busy()
	}
	return p
}

// lock serializes the steps of one partition.
func (m *Maintainer) lock(tp coord.TP) func() {
	m.mu.Lock()
	l := m.locks[tp]
	if l == nil {
		l = &sync.Mutex{}
		m.locks[tp] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// Forget drops the lock of a partition no longer led.
func (m *Maintainer) Forget(tp coord.TP) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.locks, tp)
	delete(m.checked, tp)
	if topic, ok := m.dirty[tp]; ok {
		m.cfg.Metrics.forgetDirty(topic, tp)
		delete(m.dirty, tp)
	}
}

// Maintain runs lead's partition's steps until it needs none (or maxSteps), and returns the bytes of
// its uncompacted tail left, for the backlog metric.
func (m *Maintainer) Maintain(ctx context.Context, lead Lead, w Writer) (int64, error) {
	defer m.lock(lead.TP)()
	p := m.policy(lead.Topic)
	for range maxSteps {
		pi, ok := m.view.PartitionIndex(lead.TP)
		if !ok {
			return 0, nil
		}
		step := Next(pi, p, m.cfg.Now())
		if step.Kind == StepNone {
			m.observeDirty(lead, pi, p)
			return tailBytes(pi), m.expireProducers(ctx, lead, w)
		}
		if err := m.run(ctx, lead, w, pi, step); err != nil {
			m.cfg.Metrics.mergeFailed.Inc()
			return tailBytes(pi), err
		}
	}
	pi, _ := m.view.PartitionIndex(lead.TP)
	return tailBytes(pi), nil
}

func tailBytes(pi coord.PartitionIndex) int64 {
	var n int64
	for _, t := range pi.Tail {
		n += t.Bytes
	}
	return n
}

// run carries out one step and waits until the view shows it, so that the next step plans from it.
func (m *Maintainer) run(ctx context.Context, lead Lead, w Writer, pi coord.PartitionIndex, s Step) error {
	var rev int64
	var err error
	switch s.Kind {
	case StepMoveLogStart:
		rev, err = w.MoveLogStart(ctx, lead.TP, lead.Epoch, s.LogStart, s.Below)
		if err == nil {
			m.cfg.Metrics.logStarts.Inc()
			m.cfg.Logger.Debug("log start moved", "tp", lead.TP, "from", pi.LogStart, "to", s.LogStart)
		}
	case StepMergeTail:
		rev, err = m.mergeTail(ctx, lead, w, s.Tail)
	case StepMergeSegments:
		rev, err = m.mergeSegments(ctx, lead, w, s.Segments, s.Level)
	case StepClean:
		rev, err = m.clean(ctx, lead, w, s)
	}
	if err != nil {
		return err
	}
	return m.view.WaitRevision(ctx, rev)
}

// DeleteRecords moves lead's partition's log start to offset (Kafka's DeleteRecords; -1: the high
// watermark) and returns the log start after it. An offset past the high watermark is an error; one
// at or below the log start changes nothing.
func (m *Maintainer) DeleteRecords(ctx context.Context, lead Lead, w Writer, offset int64) (int64, error) {
	defer m.lock(lead.TP)()
	pi, ok := m.view.PartitionIndex(lead.TP)
	if !ok {
		return 0, fmt.Errorf("lifecycle: delete records of %s: no such partition", lead.TP)
	}
	if offset < 0 {
		offset = pi.HighWatermark
	}
	if offset > pi.HighWatermark {
		return pi.LogStart, fmt.Errorf("%w: %d is past the high watermark %d", ErrOffsetOutOfRange, offset, pi.HighWatermark)
	}
	if offset <= pi.LogStart {
		return pi.LogStart, nil
	}
	var below []int64
	for _, s := range pi.Segments {
		if s.LastOffset < offset {
			below = append(below, s.BaseOffset)
		}
	}
	rev, err := w.MoveLogStart(ctx, lead.TP, lead.Epoch, offset, below)
	if err != nil {
		return pi.LogStart, err
	}
	m.cfg.Metrics.logStarts.Inc()
	return offset, m.view.WaitRevision(ctx, rev)
}

// ErrOffsetOutOfRange is DeleteRecords' error for an offset past the high watermark.
var ErrOffsetOutOfRange = errors.New("lifecycle: offset out of range")

// mergeTail writes the batches of a prefix of the tail, offsets and leader epochs written in, as one
// level-1 segment, the snapshots of the producers whose batches it covers, and then the segment's key.
func (m *Maintainer) mergeTail(ctx context.Context, lead Lead, w Writer, tail []coord.TailEntry) (int64, error) {
	var data [][]byte
	var spans []segstore.Span
	var epochs []coord.EpochStart
	var read int64
	minTs := int64(-1)
	raws, err := m.extents.ReadAll(ctx, tailExtents(tail))
	if err != nil {
		return 0, err
	}
	for _, e := range tail {
		epochs = addEpoch(epochs, int32(e.Epoch), e.BaseOffset)
		base := e.BaseOffset
		if e.Marker != nil {
			if m.cfg.Marker == nil {
				return 0, fmt.Errorf("lifecycle: merge %s: a transaction marker at %d, and no way to write one", lead.TP, e.BaseOffset)
			}
			control := m.cfg.Marker(nil, e.IndexEntry)
			span, err := extentSpan(control)
			if err != nil {
				return 0, err
			}
			data, spans, base = append(data, control), append(spans, span), e.BaseOffset+1
		}
		for _, x := range e.Extents {
			raw := raws[0]
			raws = raws[1:]
			read += int64(len(raw))
			patched, next, err := m.cfg.Patch(nil, raw, base, int32(e.Epoch))
			if err != nil {
				return 0, fmt.Errorf("lifecycle: merge %s: extent of %s at %d: %w", lead.TP, x.Object, x.Pos, err)
			}
			span, err := extentSpan(patched)
			if err != nil {
				return 0, err
			}
			if minTs < 0 || (span.MaxTimestamp >= 0 && span.MaxTimestamp < minTs) {
				minTs = span.MaxTimestamp
			}
			data, spans, base = append(data, patched), append(spans, span), next
		}
		if base != e.LastOffset+1 {
			return 0, fmt.Errorf("lifecycle: merge %s: %w: entry [%d, %d] holds batches up to %d",
				lead.TP, segstore.ErrCorrupt, e.BaseOffset, e.LastOffset, base-1)
		}
	}
	plan, err := segstore.PlanPartSegment(lead.TP.Topic, lead.TP.Partition, spans, segstore.DefaultPartBlockTarget)
	if err != nil {
		return 0, err
	}
	parts, seg, err := segstore.BuildPartSegment(plan, data)
	if err != nil {
		return 0, err
	}
	key := segstore.NewPartKey(lead.TP.Topic, lead.TP.Partition, m.cfg.AgentID)
	if err := m.store.Put(ctx, key, parts...); err != nil {
		return 0, err
	}
	if err := m.snapshot(ctx, lead, w, tail); err != nil {
		return 0, err
	}
	entry := segmentEntry(key, 1, seg, epochs, minTs, tail[len(tail)-1].Epoch, m.cfg.Now())
	entries := make([]coord.IndexEntry, len(tail))
	for i, e := range tail {
		entries[i] = e.IndexEntry
	}
	entry.Segment.Aborted = coord.AbortedIn(entries)
	rev, err := m.commit(ctx, lead, w, key, entry, nil)
	if err == nil {
		m.cfg.Metrics.merges.WithLabelValues(kindTail).Inc()
		m.cfg.Metrics.mergeBytes.WithLabelValues("read").Add(float64(read))
		m.cfg.Metrics.mergeBytes.WithLabelValues("written").Add(float64(seg.Size))
	}
	return rev, err
}

// tailExtents lists the extents of entries, in order.
func tailExtents(entries []coord.TailEntry) []coord.Extent {
	var xs []coord.Extent
	for _, e := range entries {
		xs = append(xs, e.Extents...)
	}
	return xs
}

// extentSpan describes the batches of one patched extent as one span.
func extentSpan(b []byte) (segstore.Span, error) {
	spans, err := segstore.BatchSpans(b)
	if err != nil || len(spans) == 0 {
		return segstore.Span{}, fmt.Errorf("lifecycle: %w: extent without batches (%v)", segstore.ErrCorrupt, err)
	}
	s := segstore.Span{Len: int32(len(b)), FirstOffset: spans[0].FirstOffset, LastOffset: spans[len(spans)-1].LastOffset, MaxTimestamp: -1}
	for _, sp := range spans {
		s.MaxTimestamp = max(s.MaxTimestamp, sp.MaxTimestamp)
	}
	return s, nil
}

// addEpoch appends the start of a leader epoch, unless it is the last one's.
func addEpoch(epochs []coord.EpochStart, epoch int32, offset int64) []coord.EpochStart {
	if n := len(epochs); n > 0 && epochs[n-1].Epoch == epoch {
		return epochs
	}
	return append(epochs, coord.EpochStart{Epoch: epoch, Offset: offset})
}

// segmentEntry is the index entry of a segment written to key.
func segmentEntry(key string, level int, seg *segstore.PartSegment, epochs []coord.EpochStart, minTs, lastEpoch int64, now time.Time) coord.IndexEntry {
	return coord.IndexEntry{
		BaseOffset: seg.BaseOffset, LastOffset: seg.LastOffset, Epoch: lastEpoch, MaxTimestamp: seg.MaxTimestamp(),
		Bytes: seg.Footer.Pos - segstore.PartHeaderLen,
		Segment: &coord.Segment{Object: key, Level: level, MinTimestamp: minTs, Epochs: epochs, Time: now.UnixMilli(),
			FooterPos: seg.Footer.Pos, FooterLen: seg.Footer.Len, FooterCRC: FooterCRC(seg.Footer)},
	}
}

// FooterCRC is the CRC-32C of a footer's bytes as stored (its rows, then their CRC), which a reader
// checks when it reads the footer as one extent.
func FooterCRC(f segstore.PartFooter) uint32 {
	return crc32.Update(f.CRC, castagnoli, binary.BigEndian.AppendUint32(nil, f.CRC))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// commit writes a segment's key, unless its object is too old for GC to have spared it.
func (m *Maintainer) commit(ctx context.Context, lead Lead, w Writer, key string, entry coord.IndexEntry, replaced []int64) (int64, error) {
	if written, ok := segstore.ObjectTime(key); ok && m.cfg.Grace > 0 && m.cfg.Now().Sub(written) > m.cfg.Grace/2 {
		return 0, fmt.Errorf("%w: %s", ErrStale, key)
	}
	return w.WriteSegment(ctx, lead.TP, lead.Epoch, entry, replaced)
}

// snapshot writes the states of the producers whose batches tail holds, as the view has them now
// (every batch of theirs committed so far): once the segment replaces those entries, the snapshots are
// where a new leader finds them.
func (m *Maintainer) snapshot(ctx context.Context, lead Lead, w Writer, tail []coord.TailEntry) error {
	ids := map[int64]bool{}
	for _, e := range tail {
		for _, b := range e.Batches {
			ids[b.ID] = true
		}
		if e.Marker != nil {
			ids[e.Marker.ProducerID] = true // its snapshot keeps the marker's revision
		}
	}
	if len(ids) == 0 {
		return nil
	}
	st, ok := m.view.PartitionState(lead.TP)
	if !ok {
		return nil
	}
	kept, dropped := RecentProducers(st.Producers, m.cfg.MaxProducers)
	var put []coord.ProducerState
	var drop []int64
	for _, p := range kept {
		if ids[p.ID] {
			put = append(put, p)
		}
	}
	for _, p := range dropped {
		drop = append(drop, p.ID)
	}
	_, err := w.WriteProducers(ctx, lead.TP, lead.Epoch, put, drop)
	return err
}

// RecentProducers splits producers into the max most recently written (by their last batch's offset)
// and the rest; limit 0 keeps all. Producers with an open transaction are always kept (past limit if
// need be): their transaction's marker must find them, and the last stable offset waits on them.
func RecentProducers(producers []coord.ProducerState, limit int) (kept, dropped []coord.ProducerState) {
	if limit <= 0 || len(producers) <= limit {
		return producers, nil
	}
	sorted := slices.Clone(producers)
	last := func(p coord.ProducerState) int64 {
		if n := len(p.Batches); n > 0 {
			return p.Batches[n-1].LastOffset
		}
		return -1
	}
	open := 0
	slices.SortFunc(sorted, func(a, b coord.ProducerState) int {
		if a.TxnOpen != b.TxnOpen {
			if a.TxnOpen {
				return -1
			}
			return 1
		}
		return cmp.Compare(last(b), last(a))
	})
	for _, p := range sorted {
		if p.TxnOpen {
			open++
		}
	}
	n := max(limit, open)
	return sorted[:n], sorted[n:]
}

// expireProducers deletes the snapshots of producers idle longer than ProducerExpiration with no batch
// left in the tail (a new leader would rebuild those from the tail) and no open transaction (its
// snapshot holds the transaction's first offset, which the last stable offset waits on).
func (m *Maintainer) expireProducers(ctx context.Context, lead Lead, w Writer) error {
	if m.cfg.ProducerExpiration <= 0 || !m.producerCheckDue(lead.TP) {
		return nil
	}
	pi, ok := m.view.PartitionIndex(lead.TP)
	st, ok2 := m.view.PartitionState(lead.TP)
	if !ok || !ok2 {
		return nil
	}
	inTail := map[int64]bool{}
	for _, e := range pi.Tail {
		for _, b := range e.Batches {
			inTail[b.ID] = true
		}
	}
	cutoff := m.cfg.Now().Add(-m.cfg.ProducerExpiration).UnixMilli()
	var expired []int64
	for _, p := range st.Producers {
		if !inTail[p.ID] && !p.TxnOpen && p.LastTime > 0 && p.LastTime < cutoff {
			expired = append(expired, p.ID)
		}
	}
	if len(expired) == 0 {
		return nil
	}
	rev, err := w.WriteProducers(ctx, lead.TP, lead.Epoch, nil, expired)
	if err != nil {
		return err
	}
	return m.view.WaitRevision(ctx, rev)
}

// producerCheckDue reports whether tp's producers are due for an expiry check, and if so counts it as
// made: at most every tenth of ProducerExpiration, and at least every minute. A check rebuilds the
// partition's producer states from the view, and a pass visits every led partition every second;
// a producer then outlives its expiration by at most a tenth of it (Kafka checks every 10 minutes,
// producer.id.expiration.check.interval.ms).
func (m *Maintainer) producerCheckDue(tp coord.TP) bool {
	now := m.cfg.Now()
	every := min(m.cfg.ProducerExpiration/10, time.Minute)
	m.mu.Lock()
	defer m.mu.Unlock()
	if last, ok := m.checked[tp]; ok && now.Sub(last) < every && !now.Before(last) {
		return false
	}
	m.checked[tp] = now
	return true
}

// mergeSegments streams adjacent segments into one of the next level: their footers say everything
// the new object's header and footer need, and their batch regions are copied through ranged GETs, each
// block checked on the way, without holding the object.
func (m *Maintainer) mergeSegments(ctx context.Context, lead Lead, w Writer, segs []coord.IndexEntry, level int) (int64, error) {
	sources := make([][]segstore.Block, len(segs))
	keys := make([]string, len(segs))
	var epochs []coord.EpochStart
	minTs := int64(-1)
	for i, s := range segs {
		blocks, err := m.footer(ctx, s.Segment)
		if err != nil {
			return 0, err
		}
		sources[i], keys[i] = blocks, s.Segment.Object
		for _, es := range s.Segment.Epochs {
			epochs = addEpoch(epochs, es.Epoch, es.Offset)
		}
		if minTs < 0 || (s.Segment.MinTimestamp >= 0 && s.Segment.MinTimestamp < minTs) {
			minTs = s.Segment.MinTimestamp
		}
	}
	plan, err := segstore.PlanPartMerge(lead.TP.Topic, lead.TP.Partition, sources, segstore.DefaultPartBlockTarget)
	if err != nil {
		return 0, err
	}
	r, err := plan.NewReader(ctx, m.store, keys, segstore.DefaultMergeChunk)
	if err != nil {
		return 0, err
	}
	key := segstore.NewPartKey(lead.TP.Topic, lead.TP.Partition, m.cfg.AgentID)
	if err := m.store.PutReader(ctx, key, plan.Segment.Size, r); err != nil {
		return 0, err
	}
	replaced := make([]int64, len(segs))
	for i, s := range segs {
		replaced[i] = s.BaseOffset
	}
	entry := segmentEntry(key, level, &plan.Segment, epochs, minTs, segs[len(segs)-1].Epoch, m.cfg.Now())
	entry.Segment.CleanTo, entry.Segment.Cleaned = mergedCleanState(segs)
	entry.Segment.Aborted = coord.AbortedIn(segs)
	for _, s := range segs {
		entry.Segment.Tombstones += s.Segment.Tombstones
	}
	rev, err := m.commit(ctx, lead, w, key, entry, replaced)
	if err == nil {
		m.cfg.Metrics.merges.WithLabelValues(kindSegments).Inc()
		m.cfg.Metrics.mergeBytes.WithLabelValues("read").Add(float64(entry.Bytes))
		m.cfg.Metrics.mergeBytes.WithLabelValues("written").Add(float64(plan.Segment.Size))
	}
	return rev, err
}

// footer reads and decodes a segment's footer.
func (m *Maintainer) footer(ctx context.Context, s *coord.Segment) ([]segstore.Block, error) {
	return ReadFooter(ctx, m.extents, s)
}

// ReadFooter reads a segment's footer through extents (one ranged GET, checked, cached) and decodes it.
func ReadFooter(ctx context.Context, extents Extents, s *coord.Segment) ([]segstore.Block, error) {
	if s.FooterLen < 4 {
		return nil, fmt.Errorf("lifecycle: %w: segment %s has a footer of %d bytes", segstore.ErrCorrupt, s.Object, s.FooterLen)
	}
	b, err := extents.Extent(ctx, coord.Extent{Object: s.Object, Pos: s.FooterPos, Len: s.FooterLen, CRC: s.FooterCRC})
	if err != nil {
		return nil, err
	}
	f := segstore.PartFooter{Pos: s.FooterPos, Len: s.FooterLen, CRC: binary.BigEndian.Uint32(b[len(b)-4:])}
	return segstore.DecodePartFooter(b, f)
}

// Leads is the partitions to maintain and the session they are led under.
type Leads func() ([]Lead, Writer)

// Run maintains the led partitions every interval, up to concurrency at once, until ctx ends.
func (m *Maintainer) Run(ctx context.Context, interval time.Duration, concurrency int, leads Leads) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		m.Pass(ctx, concurrency, leads)
	}
}

// Pass maintains every led partition once: in groups whose tail merges' input fits PrefetchBytes, each
// group's read ahead in one go (prefetch), then its partitions maintained, up to concurrency at once.
func (m *Maintainer) Pass(ctx context.Context, concurrency int, leads Leads) {
	ls, w := leads()
	if w == nil || len(ls) == 0 {
		m.cfg.Metrics.backlog.Set(0)
		return
	}
	var backlog int64
	for _, g := range m.groups(ls) {
		m.prefetch(ctx, g.extents)
		backlog += m.maintainAll(ctx, concurrency, g.leads, w)
		if ctx.Err() != nil {
			return
		}
	}
	m.cfg.Metrics.backlog.Set(float64(backlog))
}

// passGroup is leads maintained together, and the extents their tail merges are about to read.
type passGroup struct {
	leads   []Lead
	extents []coord.Extent
}

// groups splits leads into groups whose due tail merges read at most PrefetchBytes together (a
// partition whose merge alone reads more is a group of its own); leads with no tail merge due go with
// the last group.
func (m *Maintainer) groups(leads []Lead) []passGroup {
	if m.cfg.PrefetchBytes <= 0 {
		return []passGroup{{leads: leads}}
	}
	var out []passGroup
	var cur passGroup
	var curBytes int64
	var idle []Lead
	now := m.cfg.Now()
	for _, lead := range leads {
		pi, ok := m.view.PartitionIndex(lead.TP)
		if !ok {
			continue
		}
		step := Next(pi, m.policy(lead.Topic), now)
		if step.Kind != StepMergeTail {
			idle = append(idle, lead)
			continue
		}
		xs := tailExtents(step.Tail)
		var n int64
		for _, x := range xs {
			n += int64(max(x.Len, 0))
		}
		if len(cur.leads) > 0 && curBytes+n > m.cfg.PrefetchBytes {
			out, cur, curBytes = append(out, cur), passGroup{}, 0
		}
		cur.leads, cur.extents, curBytes = append(cur.leads, lead), append(cur.extents, xs...), curBytes+n
	}
	cur.leads = append(cur.leads, idle...)
	return append(out, cur)
}

// prefetch reads xs into the read cache, so that the merges after it find them there; a failure is
// the merges' to meet again and report.
func (m *Maintainer) prefetch(ctx context.Context, xs []coord.Extent) {
	if len(xs) > 0 {
		_, _ = m.extents.ReadAll(ctx, xs)
	}
}

// maintainAll maintains leads, up to concurrency at once, and returns their tails' bytes left.
func (m *Maintainer) maintainAll(ctx context.Context, concurrency int, leads []Lead, w Writer) int64 {
	sem := make(chan struct{}, max(concurrency, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var backlog int64
	for _, lead := range leads {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n, err := m.Maintain(ctx, lead, w)
			if err != nil && ctx.Err() == nil && !errors.Is(err, coord.ErrFenced) {
				m.cfg.Logger.Warn("partition maintenance failed; the next pass tries again", "tp", lead.TP, "topic", lead.Topic.Name, "error", err)
			}
			mu.Lock()
			backlog += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return backlog
}
