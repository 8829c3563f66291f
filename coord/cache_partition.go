package coord

import (
	"slices"
	"sort"

	"github.com/hashicorp/go-hclog"
)

// partition is one partition's index as the view holds it: segments (compacted, each one key and one
// object), then the uncompacted tail (entries of commit records and legacy index keys), contiguous
// from the log start to the high watermark. Entries wholly below the log start or covered by a segment
// are dropped as they become so, and the records holding them lose a live entry (recordRef.live).
type partition struct {
	start    int64 // explicit log start (logstart key); see logStart
	hasStart bool
	segs     []IndexEntry // Segment set; sorted, contiguous
	tail     []tailEntry  // sorted, contiguous, after the last segment
	hwm      int64        // next offset; survives retention dropping every entry
	// snapshots are the producer states compaction wrote (producers/<t>/<p>/<pid>).
	snapshots map[int64]ProducerState
	// epoch is the partition's leader epoch counter (epochs/<t>/<p>), epochRev its mod revision
	// (0: no counter yet).
	epoch    int32
	epochRev int64
	wait     chan struct{} // closed (and replaced) when hwm advances or the partition goes away
}

// tailEntry is an uncompacted index entry and the record that holds it.
type tailEntry struct {
	IndexEntry
	rec     *recordRef // nil while only the leader's own Apply has brought it
	batches []ProducerBatch
	time    int64 // the record's commit time (unix ms)
}

// recordRef counts the live entries of one commit record (or legacy index key): a record none of
// whose entries is live any more is dead, and GC deletes its key.
type recordRef struct {
	key  string
	live int
}

func newPartition() *partition { return &partition{wait: make(chan struct{})} }

// advance moves the high watermark and wakes its waiters.
func (p *partition) advance(hwm int64) {
	if hwm <= p.hwm {
		return
	}
	p.hwm = hwm
	close(p.wait)
	p.wait = make(chan struct{})
}

// held is the first offset the partition holds an entry for; the high watermark when none.
func (p *partition) held() int64 {
	switch {
	case len(p.segs) > 0:
		return p.segs[0].BaseOffset
	case len(p.tail) > 0:
		return p.tail[0].BaseOffset
	}
	return p.hwm
}

// logStart is the first offset a consumer may read: the explicit log start, or the first held.
func (p *partition) logStart() int64 {
	if p.hasStart {
		return max(p.start, p.held())
	}
	return p.held()
}

// covered is the first offset that no segment covers and that is not below the log start: what an
// uncompacted entry must end at or after to be live.
func (p *partition) covered() int64 {
	c := int64(0)
	if n := len(p.segs); n > 0 {
		c = p.segs[n-1].LastOffset + 1
	}
	if p.hasStart {
		c = max(c, p.start)
	}
	return c
}

// empty reports whether the partition holds no entry at all.
func (p *partition) empty() bool { return len(p.segs) == 0 && len(p.tail) == 0 }

// addTail adds an uncompacted entry at the high watermark. rec is the record holding it (nil for
// the leader's own Apply). An entry already there (Apply, then the same entry by watch) gets its
// record; one wholly covered is dead on arrival. An entry from etcd (fromEtcd: loaded or watched) may
// also start a partition that holds nothing: loads and the watch bring a partition's entries in etcd's
// order, so the first one seen is the first there is, wherever it starts (past 0 when the keys before
// it were deleted, or straddling the log start). The leader's own Apply cannot tell: entries before it
// may still be on their way. Anything else that does not follow the high watermark would break
// contiguity and is refused. It reports whether it took e with its record.
func (p *partition) addTail(te tailEntry, tp TP, fromEtcd bool, log hclog.Logger) bool {
	e := te.IndexEntry
	switch {
	case e.LastOffset < e.BaseOffset || e.BaseOffset < 0:
		log.Warn("ignoring index entry with invalid offsets", "tp", tp, "base", e.BaseOffset, "last", e.LastOffset)
		return false
	case e.LastOffset < p.covered():
		return false // compacted or below the log start already
	case e.BaseOffset == p.hwm || (fromEtcd && p.empty() && (!p.hasStart || e.BaseOffset <= p.hwm)):
		p.tail = append(p.tail, te)
		p.advance(e.LastOffset + 1)
		return te.rec != nil
	case e.BaseOffset < p.hwm:
		return p.attach(te, tp, log)
	}
	log.Warn("ignoring index entry past the high watermark", "tp", tp, "base", e.BaseOffset, "last", e.LastOffset, "hwm", p.hwm)
	return false
}

// trimLegacy drops the entry of a deleted legacy index key when it is the first the partition holds:
// the legacy layout's retention (or an operator) deleted a prefix of the keys. It reports whether it
// did; an entry anywhere else stays, as contiguity needs.
func (p *partition) trimLegacy(base int64, ref *recordRef) bool {
	if len(p.segs) > 0 || len(p.tail) == 0 || p.tail[0].BaseOffset != base || p.tail[0].rec != ref {
		return false
	}
	p.tail = p.tail[1:]
	return true
}

// attach gives the record of a watched entry to the same entry the leader applied before the watch
// brought it. An entry overlapping others differently means two commits claimed the same offsets,
// which the fencing rules out: it is logged as corruption and ignored.
func (p *partition) attach(te tailEntry, tp TP, log hclog.Logger) bool {
	i := sort.Search(len(p.tail), func(i int) bool { return p.tail[i].BaseOffset >= te.BaseOffset })
	if i < len(p.tail) && p.tail[i].BaseOffset == te.BaseOffset && p.tail[i].LastOffset == te.LastOffset {
		cur := &p.tail[i]
		if cur.rec == nil && te.rec != nil {
			cur.rec, cur.batches, cur.time = te.rec, te.batches, te.time
			return true
		}
		return false // the same entry again (a reload carrying the leader's own entries over)
	}
	log.Error("ignoring index entry that overlaps entries held: two commits claimed the same offsets",
		"tp", tp, "base", te.BaseOffset, "last", te.LastOffset, "hwm", p.hwm)
	return false
}

// putSegment installs a segment: it replaces the segments it covers (a merge) and drops the
// uncompacted entries it covers. It returns the records that lost a live entry.
func (p *partition) putSegment(e IndexEntry, tp TP, log hclog.Logger) []*recordRef {
	if e.Segment == nil || e.LastOffset < e.BaseOffset || (p.hasStart && e.LastOffset < p.start) {
		return nil // invalid, or wholly below the log start: dead on arrival
	}
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].BaseOffset >= e.BaseOffset })
	j := sort.Search(len(p.segs), func(j int) bool { return p.segs[j].BaseOffset > e.LastOffset })
	if i > 0 && p.segs[i-1].LastOffset >= e.BaseOffset {
		log.Error("ignoring segment that overlaps part of another", "tp", tp, "base", e.BaseOffset, "last", e.LastOffset)
		return nil
	}
	p.segs = slices.Replace(p.segs, i, j, e)
	p.advance(e.LastOffset + 1)
	return p.dropTail(e.LastOffset + 1)
}

// deleteSegment removes the segment at base, if it is still there (a merge's put replaced it already).
func (p *partition) deleteSegment(base int64) {
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].BaseOffset >= base })
	if i < len(p.segs) && p.segs[i].BaseOffset == base {
		p.segs = slices.Delete(p.segs, i, i+1)
	}
}

// setStart moves the log start up to offset; segments and entries wholly below it go. It returns the
// records that lost a live entry.
func (p *partition) setStart(offset int64) []*recordRef {
	if p.hasStart && offset <= p.start {
		return nil
	}
	p.start, p.hasStart = offset, true
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].LastOffset >= offset })
	p.segs = slices.Delete(p.segs, 0, i)
	dead := p.dropTail(offset)
	if offset > p.hwm {
		p.advance(offset)
	} else {
		close(p.wait) // wake fetches waiting below the new start: they are out of range now
		p.wait = make(chan struct{})
	}
	return dead
}

// dropTail drops the uncompacted entries that end before offset and returns their records.
func (p *partition) dropTail(offset int64) []*recordRef {
	n := sort.Search(len(p.tail), func(i int) bool { return p.tail[i].LastOffset >= offset })
	var dead []*recordRef
	for _, te := range p.tail[:n] {
		if te.rec != nil {
			dead = append(dead, te.rec)
		}
	}
	p.tail = slices.Delete(p.tail, 0, n)
	return dead
}

// records lists the records holding the partition's entries, for a topic that goes away.
func (p *partition) records() []*recordRef {
	var out []*recordRef
	for _, te := range p.tail {
		if te.rec != nil {
			out = append(out, te.rec)
		}
	}
	return out
}

// read returns copies of the entries (segments, then uncompacted ones) from the one containing
// from, until their bytes reach maxBytes (at least one) or the entries stop being contiguous.
func (p *partition) read(from, maxBytes int64) []IndexEntry {
	var out []IndexEntry
	var sum int64
	take := func(e IndexEntry) bool {
		if len(out) > 0 && (sum >= maxBytes || e.BaseOffset != out[len(out)-1].LastOffset+1) {
			return false
		}
		out = append(out, e)
		sum += e.Bytes
		return true
	}
	i := sort.Search(len(p.segs), func(i int) bool { return p.segs[i].LastOffset >= from })
	if i < len(p.segs) && p.segs[i].BaseOffset > from {
		return nil
	}
	for ; i < len(p.segs); i++ {
		if !take(p.segs[i]) {
			return out
		}
	}
	j := sort.Search(len(p.tail), func(j int) bool { return p.tail[j].LastOffset >= from })
	if len(out) == 0 && (j == len(p.tail) || p.tail[j].BaseOffset > from) {
		return nil
	}
	for ; j < len(p.tail); j++ {
		if !take(p.tail[j].IndexEntry) {
			break
		}
	}
	return out
}

// epochEnd answers OffsetForLeaderEpoch (see Cache.EpochEnd) over the epochs the partition's
// entries record, in offset order: each segment's list of epoch starts, each uncompacted entry's epoch.
func (p *partition) epochEnd(epoch int64) (leaderEpoch, end int64) {
	leaderEpoch, end = epoch, p.hwm
	start := p.logStart()
	// visit sees epoch e begin at offset at; it reports false once e is past the one asked for.
	visit := func(e int64, at int64) bool {
		if e > epoch {
			end = max(at, start)
			return false
		}
		leaderEpoch = e
		return true
	}
	for _, s := range p.segs {
		for _, es := range s.Segment.Epochs {
			if !visit(int64(es.Epoch), es.Offset) {
				return leaderEpoch, end
			}
		}
	}
	for _, te := range p.tail {
		if !visit(te.Epoch, te.BaseOffset) {
			break
		}
	}
	return leaderEpoch, end
}

// lastEpoch is the leader epoch of the newest entry, 0 when there is none.
func (p *partition) lastEpoch() int64 {
	if n := len(p.tail); n > 0 {
		return p.tail[n-1].Epoch
	}
	if n := len(p.segs); n > 0 {
		return p.segs[n-1].Epoch
	}
	return 0
}

// producerStates rebuilds each producer's state: its snapshot, then the batches of the uncompacted
// entries in offset order (a snapshot written before a merge that then failed overlaps them: a batch
// already in the state is skipped), keeping the last maxProducerBatches. Batches at or past the high
// watermark cannot be committed and are dropped.
func (p *partition) producerStates() []ProducerState {
	states := make(map[int64]ProducerState, len(p.snapshots))
	for id, s := range p.snapshots {
		s.Batches = slices.Clone(s.Batches)
		states[id] = s
	}
	for _, te := range p.tail {
		for _, b := range te.batches {
			s, ok := states[b.ID]
			if !ok {
				s = ProducerState{ID: b.ID, Epoch: b.Epoch}
			}
			states[b.ID] = appendBatch(s, b, te.time)
		}
		if m := te.Marker; m != nil {
			states[m.ProducerID] = applyMarker(states[m.ProducerID], m, te.BaseOffset)
		}
	}
	out := make([]ProducerState, 0, len(states))
	for _, s := range states {
		s.Batches = slices.DeleteFunc(s.Batches, func(b SeqBatch) bool { return b.FirstOffset >= p.hwm })
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b ProducerState) int { return cmpInt64(a.ID, b.ID) })
	return out
}

// applyMarker returns s after a transaction marker of its producer at offset: a newer epoch (an abort
// after an epoch bump) starts afresh, the marker's Prepare revision is remembered (markers sent again
// find it; a batch verified before it is refused), and the transaction open before it is closed.
func applyMarker(s ProducerState, m *TxnMarker, offset int64) ProducerState {
	if s.ID != m.ProducerID || m.Epoch > s.Epoch {
		s = ProducerState{ID: m.ProducerID, Epoch: max(m.Epoch, s.Epoch), LastTime: s.LastTime, MarkerRev: s.MarkerRev}
		// (an open transaction of the older epoch is the one this marker ends)
	}
	s.MarkerRev = max(s.MarkerRev, m.TxnVersion)
	if s.TxnFirst < offset { // a snapshot's newer transaction is not this marker's
		s.TxnOpen, s.TxnFirst = false, 0
	}
	return s
}

// MaxProducerBatches is how many recent batches of each producer a partition remembers, to answer
// retried duplicates with their original offsets: Kafka keeps 5, the most a producer has in flight.
const MaxProducerBatches = 5

// appendBatch returns s after batch b, committed at time t (unix ms). A newer producer epoch starts
// afresh; an older one, or a batch the state already has, changes nothing.
func appendBatch(s ProducerState, b ProducerBatch, t int64) ProducerState {
	switch {
	case b.Epoch < s.Epoch:
		return s
	case b.Epoch > s.Epoch:
		s = ProducerState{ID: b.ID, Epoch: b.Epoch, LastTime: s.LastTime, MarkerRev: s.MarkerRev, TxnOpen: s.TxnOpen, TxnFirst: s.TxnFirst}
	}
	if b.Transactional && !s.TxnOpen {
		s.TxnOpen, s.TxnFirst = true, b.FirstOffset
	}
	if n := len(s.Batches); n > 0 && s.Batches[n-1].FirstOffset >= b.FirstOffset {
		return s
	}
	s.Batches = append(s.Batches, SeqBatch{FirstSeq: b.FirstSeq, LastSeq: b.LastSeq, FirstOffset: b.FirstOffset, LastOffset: b.LastOffset})
	if n := len(s.Batches); n > MaxProducerBatches {
		s.Batches = slices.Clone(s.Batches[n-MaxProducerBatches:])
	}
	s.LastTime = max(s.LastTime, t)
	return s
}

// describe fills an operator's view of the partition's offsets and storage.
func (p *partition) describe(ps *PartitionStatus) {
	ps.LogStart, ps.NextOffset = p.logStart(), p.hwm
	ps.Segments, ps.Tail = len(p.segs), len(p.tail)
	objects := map[string]bool{}
	for _, s := range p.segs {
		ps.Bytes += s.Bytes
		objects[s.Segment.Object] = true
	}
	for _, te := range p.tail {
		ps.Bytes += te.Bytes
		for _, x := range te.Extents {
			objects[x.Object] = true
		}
	}
	ps.Objects = len(objects)
	describeCleaner(p.segs, ps)
}
