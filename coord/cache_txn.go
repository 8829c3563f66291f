package coord

import (
	"slices"
)

// Transactions in the view (docs/INTERNALS.md, "Last stable offset and aborted transactions"): a
// partition's last stable offset and its aborted transactions, derived from what the view already
// holds (producer snapshots, the tail's transactional batches and markers, segments' aborted lists).

// AbortedTxn is one aborted transaction on a partition: its producer, its first batch's offset and
// its abort marker's offset.
type AbortedTxn struct {
	ProducerID  int64 `json:"pid"`
	FirstOffset int64 `json:"first"`
	Marker      int64 `json:"marker"`
}

// stable is the partition's last stable offset: the first offset of its oldest open transaction,
// else the high watermark; never below the log start. A snapshot's open transaction is closed only
// by a marker after it (the tail may still hold entries a snapshot covers while a merge lands).
func (p *partition) stable() int64 {
	open := map[int64]int64{}
	for id, s := range p.snapshots {
		if s.TxnOpen {
			open[id] = s.TxnFirst
		}
	}
	for _, te := range p.tail {
		for _, b := range te.batches {
			if _, ok := open[b.ID]; b.Transactional && !ok {
				open[b.ID] = b.FirstOffset
			}
		}
		if m := te.Marker; m != nil {
			if first, ok := open[m.ProducerID]; ok && first < te.BaseOffset {
				delete(open, m.ProducerID)
			}
		}
	}
	lso := p.hwm
	for _, first := range open {
		lso = min(lso, first)
	}
	return max(lso, p.logStart())
}

// aborted lists the partition's aborted transactions whose marker is at or after from, in marker
// order: the segments' lists, then the tail's abort markers.
func (p *partition) aborted(from int64) []AbortedTxn {
	var out []AbortedTxn
	for _, s := range p.segs {
		if s.LastOffset < from {
			continue
		}
		for _, a := range s.Segment.Aborted {
			if a.Marker >= from {
				out = append(out, a)
			}
		}
	}
	for _, te := range p.tail {
		if m := te.Marker; m != nil && !m.Commit && m.FirstOffset >= 0 && te.BaseOffset >= from {
			out = append(out, AbortedTxn{ProducerID: m.ProducerID, FirstOffset: m.FirstOffset, Marker: te.BaseOffset})
		}
	}
	return out
}

// TxnState is tp's last stable offset and the aborted transactions a read_committed fetch from
// offset from may need (those whose marker is at or after from).
func (k *Cache) TxnState(tp TP, from int64) (lso int64, aborted []AbortedTxn) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	p := k.st.parts[tp]
	if p == nil {
		return 0, nil
	}
	return p.stable(), p.aborted(max(from, p.logStart()))
}

// AbortedIn lists the aborted transactions whose markers entries hold, in marker order: what a merge
// of them records in its segment (markers of the tail; the lists of merged segments).
func AbortedIn(entries []IndexEntry) []AbortedTxn {
	var out []AbortedTxn
	for _, e := range entries {
		if e.Segment != nil {
			out = append(out, e.Segment.Aborted...)
		}
		if m := e.Marker; m != nil && !m.Commit && m.FirstOffset >= 0 {
			out = append(out, AbortedTxn{ProducerID: m.ProducerID, FirstOffset: m.FirstOffset, Marker: e.BaseOffset})
		}
	}
	slices.SortStableFunc(out, func(a, b AbortedTxn) int { return cmpInt64(a.Marker, b.Marker) })
	return out
}
