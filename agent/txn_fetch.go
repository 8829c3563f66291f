package agent

import (
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
