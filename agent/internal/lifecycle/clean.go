package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/cleaner"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// A compacted topic's clean (docs/INTERNALS.md, "Compacted topics: the cleaner"): a key map over the
// dirty section, then every segment below its end rewritten with the records the map says are
// superseded (and tombstones past their horizon) removed, offsets unchanged, and the new entries
// committed with one fenced Txn. The byte work is package cleaner's.

// Defaults of the cleaner.
const (
	// DefaultCleanerMemory bounds a clean's key map (--cleaner-memory).
	DefaultCleanerMemory = 64 << 20
	// DefaultMaxBatchBytes bounds a batch's decompressed records (the produce path's bound).
	DefaultMaxBatchBytes = 64 << 20
	// cleanReadChunk is about how many bytes of blocks a clean reads with one ReadAll.
	cleanReadChunk = 8 << 20
)

// segmentReplacer is how a clean commits (coord.Session).
type segmentReplacer interface {
	ReplaceSegments(ctx context.Context, tp coord.TP, epoch int64, segs []coord.IndexEntry) (int64, error)
}

// cleanRun is one clean of one partition.
type cleanRun struct {
	m    *Maintainer
	lead Lead
	c    Compaction
	now  time.Time
	keys *cleaner.KeyMap
	end  int64          // the dirty section's end as the map covers it (never past the last stable offset)
	live map[int64]bool // last offsets of live producers' last batches
	// aborted are the partition's aborted transactions by producer id, as the view held them with the
	// last stable offset; txnRead and txnKept are, per producer, whether the transaction the rewrite is
	// in had records when read, and has records left (reset at each of its markers).
	aborted map[int64][]coord.AbortedTxn
	txnRead map[int64]bool
	txnKept map[int64]bool
	removed int64 // records removed
	read    int64 // batch bytes read by the rewrite
	written int64 // bytes of new objects
}

// clean cleans lead's partition as step says and commits it.
func (m *Maintainer) clean(ctx context.Context, lead Lead, w Writer, step Step) (int64, error) {
	rw, ok := w.(segmentReplacer)
	if !ok {
		return 0, errors.New("lifecycle: the writer cannot replace segments")
	}
	p := m.cfg.Policy(lead.Topic)
	if p.Compaction == nil {
		return 0, nil
	}
	select {
	case m.cleaning <- struct{}{}:
		defer func() { <-m.cleaning }()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	r := &cleanRun{m: m, lead: lead, c: *p.Compaction, now: m.cfg.Now(), end: step.DirtyTo,
		keys:    cleaner.NewKeyMap(int(m.cfg.cleanerMemory() / cleaner.EntryBytes)),
		aborted: map[int64][]coord.AbortedTxn{}, txnRead: map[int64]bool{}, txnKept: map[int64]bool{}}
	r.takeTxnState(step)
	if err := r.buildMap(ctx, step); err != nil {
		return 0, err
	}
	r.live = m.liveProducerBatches(lead.TP)
	var entries []coord.IndexEntry
	var oldest time.Time // when the oldest uncommitted object was written
	var rev int64
	for _, seg := range step.Segments {
		if seg.BaseOffset >= r.end {
			break
		}
		e, wrote, err := r.cleanSegment(ctx, seg)
		if err != nil {
			return 0, err
		}
		if wrote && oldest.IsZero() {
			oldest = m.cfg.Now()
		}
		entries = append(entries, e)
		// Commit what is written before its objects grow too old for GC to spare them.
		if !oldest.IsZero() && m.cfg.Grace > 0 && m.cfg.Now().Sub(oldest) > m.cfg.Grace/4 {
			if rev, err = rw.ReplaceSegments(ctx, lead.TP, lead.Epoch, entries); err != nil {
				return 0, err
			}
			entries, oldest = nil, time.Time{}
		}
	}
	if len(entries) > 0 {
		var err error
		if rev, err = rw.ReplaceSegments(ctx, lead.TP, lead.Epoch, entries); err != nil {
			return 0, err
		}
	}
	m.cfg.Metrics.observeClean(r.read, r.written, r.removed)
	m.cfg.Logger.Debug("partition cleaned", "tp", lead.TP, "dirty_from", step.DirtyFrom, "dirty_to", r.end,
		"keys", r.keys.Len(), "removed", r.removed, "read", r.read, "written", r.written)
	return rev, nil
}

// takeTxnState takes the partition's aborted transactions from the view, with its last stable offset
// in the same look: every transactional batch below that offset belongs to a transaction that has
// ended, and the list names those that aborted, their markers in segments or in the tail. Segments hold
// only stable offsets (mergeTail), so the section never reaches past it; the end is bounded by it all
// the same, so that the rule holds here whatever made the segments.
func (r *cleanRun) takeTxnState(step Step) {
	from := int64(0)
	if len(step.Segments) > 0 {
		from = step.Segments[0].BaseOffset
	}
	lso, aborted := r.m.view.TxnState(r.lead.TP, from)
	r.end = min(r.end, lso)
	for _, a := range aborted {
		r.aborted[a.ProducerID] = append(r.aborted[a.ProducerID], a)
	}
}

// abortedBatch reports whether b, a transactional batch below the last stable offset, is part of a
// transaction that aborted.
func (r *cleanRun) abortedBatch(b cleaner.Batch) bool {
	for _, a := range r.aborted[b.ProducerID] {
		if b.BaseOffset >= a.FirstOffset && b.BaseOffset < a.Marker {
			return true
		}
	}
	return false
}

// buildMap takes the keys of the dirty section into the map, and ends the section early at the first
// batch whose keys do not fit. Records of aborted transactions are not taken: they never supersede.
func (r *cleanRun) buildMap(ctx context.Context, step Step) error {
	errFull := errors.New("full")
	taken := 0 // batches taken whole
	for _, seg := range step.Segments {
		if seg.LastOffset < step.DirtyFrom {
			continue
		}
		err := r.m.eachBatch(ctx, seg, step.DirtyFrom, step.DirtyTo, func(b cleaner.Batch) error {
			if b.BaseOffset < step.DirtyFrom || b.BaseOffset >= r.end || b.Control() || b.Transactional() && r.abortedBatch(b) {
				return nil
			}
			full := false
			err := cleaner.EachRecord(b, r.m.cfg.maxBatchBytes(), func(o int64, rec cleaner.Record) error {
				if rec.Key != nil && !r.keys.Put(rec.Key, o) {
					full = true
				}
				return nil
			})
			if err != nil {
				return err
			}
			switch {
			case full && taken == 0:
				// The first batch is taken whole, past the bound, so that the clean makes progress.
				err = cleaner.EachRecord(b, r.m.cfg.maxBatchBytes(), func(o int64, rec cleaner.Record) error {
					if rec.Key != nil {
						r.keys.Force(rec.Key, o)
					}
					return nil
				})
				if err == nil {
					r.end, err = b.LastOffset()+1, errFull
				}
				return err
			case full:
				r.end = b.BaseOffset
				return errFull
			}
			taken++
			return nil
		})
		if errors.Is(err, errFull) {
			break
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// liveProducerBatches are the last offsets of the last batch of each producer the partition's state
// holds: those batches stay, possibly empty, as Kafka keeps them.
func (m *Maintainer) liveProducerBatches(tp coord.TP) map[int64]bool {
	live := map[int64]bool{}
	st, ok := m.view.PartitionState(tp)
	if !ok {
		return live
	}
	for _, p := range st.Producers {
		if n := len(p.Batches); n > 0 {
			live[p.Batches[n-1].LastOffset] = true
		}
	}
	return live
}

// cleanSegment rewrites one segment and returns its new entry, and whether a new object was written.
func (r *cleanRun) cleanSegment(ctx context.Context, seg coord.IndexEntry) (coord.IndexEntry, bool, error) {
	oldCT := cleanTo(seg)
	horizon := seg.Segment.Cleaned > 0 &&
		r.now.Sub(time.UnixMilli(seg.Segment.Cleaned)) >= r.c.DeleteRetention
	var tombstones int64
	keep := func(o int64, rec cleaner.Record) bool {
		k := r.keep(o, rec, horizon, oldCT)
		if k && rec.NullValue {
			tombstones++
		}
		return k
	}
	sp, err := newSpool()
	if err != nil {
		return coord.IndexEntry{}, false, err
	}
	defer sp.close()
	changed := false
	var dropped []int64 // offsets of the markers dropped
	err = r.m.eachBatch(ctx, seg, seg.BaseOffset, seg.LastOffset+1, func(b cleaner.Batch) error {
		r.read += int64(len(b.Raw))
		keepEmpty := b.BaseOffset == seg.BaseOffset || b.LastOffset() == seg.LastOffset || r.live[b.LastOffset()]
		if b.Control() {
			switch r.marker(b, keepEmpty, horizon, oldCT) {
			case markerDropped:
				r.removed += int64(b.NumRecords)
				changed, dropped = true, append(dropped, b.BaseOffset)
				return nil
			case markerAwaitsHorizon:
				tombstones++
			}
			return sp.add(b.Raw)
		}
		fate := keep
		if b.Transactional() && b.BaseOffset < r.end && r.abortedBatch(b) {
			fate = func(int64, cleaner.Record) bool { return false }
		}
		res, err := cleaner.Rewrite(b, r.m.cfg.maxBatchBytes(), keepEmpty, fate)
		if err != nil {
			return fmt.Errorf("lifecycle: clean %s: batch at %d: %w", r.lead.TP, b.BaseOffset, err)
		}
		if b.Transactional() {
			r.txnRead[b.ProducerID] = r.txnRead[b.ProducerID] || b.NumRecords > 0
			r.txnKept[b.ProducerID] = r.txnKept[b.ProducerID] || res.Kept > 0
		}
		r.removed += int64(res.Removed)
		if res.Removed > 0 {
			changed = true
		}
		if res.Batch == nil {
			return nil
		}
		return sp.add(res.Batch)
	})
	if err != nil {
		return coord.IndexEntry{}, false, err
	}
	e := seg
	s := *seg.Segment
	e.Segment = &s
	s.CleanTo, s.Tombstones = min(seg.LastOffset+1, max(r.end, oldCT)), tombstones
	if len(dropped) > 0 {
		// An abort marker leaves with its entry in the aborted list: its records went in an earlier
		// clean, and a reader must not filter a producer's records up to a marker no longer there.
		s.Aborted = slices.DeleteFunc(slices.Clone(s.Aborted), func(a coord.AbortedTxn) bool { return slices.Contains(dropped, a.Marker) })
	}
	switch {
	case s.CleanTo <= seg.LastOffset:
		s.Cleaned = 0
	case s.Cleaned == 0:
		s.Cleaned = r.now.UnixMilli()
	}
	if !changed {
		return e, false, nil
	}
	ne, err := r.writeSegment(ctx, e, sp)
	if err != nil {
		return coord.IndexEntry{}, false, err
	}
	return ne, true, nil
}

// A marker's fate in a clean.
const (
	markerKept          = iota
	markerAwaitsHorizon // kept; its transaction has no record left, so it goes once past its horizon
	markerDropped
)

// marker decides the fate of b, a control batch (a transaction marker), as Kafka's cleaner does: a
// marker stays while its transaction has records in the log, and goes, like a tombstone, once none was
// left when this clean read them and its segment has been clean for delete.retention.ms (horizon), in
// the part that was clean (below oldCT). The records of an aborted transaction go at the first clean
// that covers them, so its marker outlives them by at least delete.retention.ms: a reader that saw
// them also sees the marker that ends them. A marker at or past the section's end, the first or last
// batch of its segment, or a live producer's last batch (keepEmpty) stays.
func (r *cleanRun) marker(b cleaner.Batch, keepEmpty, horizon bool, oldCT int64) int {
	pid := b.ProducerID
	read, kept := r.txnRead[pid], r.txnKept[pid]
	delete(r.txnRead, pid)
	delete(r.txnKept, pid)
	switch {
	case b.BaseOffset >= r.end || keepEmpty:
		return markerKept
	case !read && horizon && b.BaseOffset < oldCT:
		return markerDropped
	case !kept:
		return markerAwaitsHorizon
	}
	return markerKept
}

// keep decides a record's fate: a record at or past the section's end stays; one without a key goes
// (written before the topic was compacted: Kafka's cleaner drops these too); one whose key has a later
// record in the map goes; a tombstone goes once its segment has been clean for delete.retention.ms
// (horizon) and it lies in the part that was clean (below oldCT).
func (r *cleanRun) keep(o int64, rec cleaner.Record, horizon bool, oldCT int64) bool {
	switch {
	case o >= r.end:
		return true
	case rec.Key == nil:
		return false
	}
	if latest, ok := r.keys.Latest(rec.Key); ok && latest > o {
		return false
	}
	return !(rec.NullValue && horizon && o < oldCT)
}

// writeSegment writes a cleaned segment's batches, spooled in sp, as a new object and returns its entry:
// the old segment's offsets, level, epochs and times, the new object's footer and bytes.
func (r *cleanRun) writeSegment(ctx context.Context, seg coord.IndexEntry, sp *spool) (coord.IndexEntry, error) {
	tp := r.lead.TP
	plan, err := segstore.PlanPartSegment(tp.Topic, tp.Partition, sp.spans, segstore.DefaultPartBlockTarget)
	if err != nil {
		return coord.IndexEntry{}, err
	}
	body, ps, err := sp.object(plan)
	if err != nil {
		return coord.IndexEntry{}, err
	}
	if ps.BaseOffset != seg.BaseOffset || ps.LastOffset != seg.LastOffset {
		return coord.IndexEntry{}, fmt.Errorf("lifecycle: clean %s: %w: cleaned segment spans [%d, %d], not [%d, %d]",
			tp, segstore.ErrCorrupt, ps.BaseOffset, ps.LastOffset, seg.BaseOffset, seg.LastOffset)
	}
	key := segstore.NewPartKey(tp.Topic, tp.Partition, r.m.cfg.AgentID)
	if err := r.m.store.PutReader(ctx, key, ps.Size, body); err != nil {
		return coord.IndexEntry{}, err
	}
	r.written += ps.Size
	// Everything else of the old entry stays (fields it gains later included): only the object moved.
	fresh := segmentEntry(key, seg.Segment.Level, ps, seg.Segment.Epochs, seg.Segment.MinTimestamp, seg.Epoch, r.now)
	e, s := seg, *seg.Segment
	s.Object, s.FooterPos, s.FooterLen, s.FooterCRC = key, fresh.Segment.FooterPos, fresh.Segment.FooterLen, fresh.Segment.FooterCRC
	e.Segment, e.Bytes, e.MaxTimestamp = &s, fresh.Bytes, fresh.MaxTimestamp
	return e, nil
}

// eachBatch calls fn with each batch of seg's blocks that hold offsets in [from, to), in order, reading
// the blocks through the extents cache about cleanReadChunk bytes at a time.
func (m *Maintainer) eachBatch(ctx context.Context, seg coord.IndexEntry, from, to int64, fn func(cleaner.Batch) error) error {
	blocks, err := m.footer(ctx, seg.Segment)
	if err != nil {
		return err
	}
	var chunk []coord.Extent
	var n int64
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		raws, err := m.extents.ReadAll(ctx, chunk)
		if err != nil {
			return err
		}
		chunk, n = chunk[:0], 0
		for _, raw := range raws {
			if err := cleaner.Batches(raw, fn); err != nil {
				return err
			}
		}
		return nil
	}
	for _, b := range blocks {
		if b.LastOffset < from || b.FirstOffset >= to {
			continue
		}
		chunk = append(chunk, coord.Extent{Object: seg.Segment.Object, Pos: b.Pos, Len: int32(b.Len), CRC: b.CRC})
		if n += int64(b.Len); n >= cleanReadChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

func (c MaintainConfig) cleanerMemory() int64 {
	if c.CleanerMemory > 0 {
		return c.CleanerMemory
	}
	return DefaultCleanerMemory
}

func (c MaintainConfig) maxBatchBytes() int64 {
	if c.MaxBatchBytes > 0 {
		return c.MaxBatchBytes
	}
	return DefaultMaxBatchBytes
}

// mergedCleanState is the cleaner state of a merge of adjacent segs: clean up to where their clean
// prefix ends; wholly clean (at the newest of their clean times, so that no tombstone leaves early)
// only when all are.
func mergedCleanState(segs []coord.IndexEntry) (to, cleaned int64) {
	for i, s := range segs {
		ct := cleanTo(s)
		if ct <= s.LastOffset {
			if i == 0 && ct == s.BaseOffset {
				return 0, 0
			}
			return ct, 0
		}
		to, cleaned = ct, max(cleaned, s.Segment.Cleaned)
	}
	return to, cleaned
}

// observeDirty exports a compacted partition's dirty ratio.
func (m *Maintainer) observeDirty(lead Lead, pi coord.PartitionIndex, p Policy) {
	if p.Compaction == nil {
		return
	}
	m.mu.Lock()
	m.dirty[lead.TP] = lead.Topic.Name
	m.mu.Unlock()
	m.cfg.Metrics.observeDirty(lead.Topic.Name, lead.TP, Dirty(pi, *p.Compaction, m.cfg.Now()).Ratio)
}
