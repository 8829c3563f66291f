package agent

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// markerBatch is the control batch of marker entry e (docs/INTERNALS.md, "Markers": a commit record
// carries its fields, not its bytes).
func markerBatch(dst []byte, e coord.IndexEntry) []byte {
	return kwire.AppendControlBatch(dst, kwire.Marker{BaseOffset: e.BaseOffset, LeaderEpoch: int32(e.Epoch),
		ProducerID: e.Marker.ProducerID, ProducerEpoch: e.Marker.Epoch, Commit: e.Marker.Commit,
		CoordinatorEpoch: e.Marker.CoordinatorEpoch, Timestamp: e.MaxTimestamp})
}

// fetchMarker appends marker entry e's control batch to records, as fetchExtents appends an entry's
// batches: not when the fetch starts past it, not past limit unless it is the first batch.
func fetchMarker(e coord.IndexEntry, offset, limit int64, first bool, records []byte) (out []byte, stillFirst, stop bool) {
	if offset > e.BaseOffset {
		return records, first, false
	}
	if int64(len(records))+kwire.ControlBatchLen > limit && (len(records) > 0 || !first) {
		return records, first, true
	}
	return markerBatch(records, e), false, false
}

// readCommitted makes sp, a read_uncommitted answer for tp from offset, a read_committed one
// (docs/INTERNALS.md, "Last stable offset and aborted transactions"): the batches below the last
// stable offset only, the LSO, and the aborted transactions the batches served may belong to
// (clients drop those producers' batches between each one's first offset and its marker). It
// returns the bytes served. Without transactions served it changes nothing: the LSO is the high
// watermark.
func (a *Agent) readCommitted(sp *kmsg.FetchResponseTopicPartition, tp coord.TP, offset int64) int64 {
	if a.txns == nil {
		return int64(len(sp.RecordBatches))
	}
	lso, aborted := a.cache.TxnState(tp, offset)
	lso = min(lso, sp.HighWatermark)
	sp.LastStableOffset = lso
	records, last := sp.RecordBatches, int64(-1)
	for n := 0; n < len(records); {
		length, count, err := kwire.BatchSpan(records[n:])
		if err != nil || int64(binary.BigEndian.Uint64(records[n:])) >= lso {
			records = records[:n]
			break
		}
		base := int64(binary.BigEndian.Uint64(records[n:]))
		last = base + count - 1
		n += length
	}
	sp.RecordBatches = records
	if last >= 0 {
		for _, ab := range aborted {
			if ab.FirstOffset <= last && ab.Marker >= offset {
				t := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				t.ProducerID, t.FirstOffset = ab.ProducerID, ab.FirstOffset
				sp.AbortedTransactions = append(sp.AbortedTransactions, t)
			}
		}
	}
	return int64(len(records))
}

// lastStable is tp's last stable offset when transactions are served, else hwm.
func (a *Agent) lastStable(tp coord.TP, hwm int64) int64 {
	if a.txns == nil {
		return hwm
	}
	lso, _ := a.cache.TxnState(tp, hwm)
	return min(lso, hwm)
}
