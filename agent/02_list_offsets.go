package agent

import (
	"context"
	"math"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// ListOffsets: v0-8
//
// Special timestamps: -1 latest (the high watermark), -2 earliest (the log start), -3 the record with
// the largest timestamp (v7+), -4 earliest local (v8+; everything is "local" here, so the log start).
// A timestamp finds the first record whose timestamp is at least it: the index narrows the search to
// one entry, whose batches are then read and decoded.
//
// Version notes:
// * v1: one offset per partition instead of a list (v0: MaxNumOffsets)
// * v2: IsolationLevel
// * v4: CurrentLeaderEpoch, LeaderEpoch in the response
// * v6: flexible versions

const (
	listLatest        = -1
	listEarliest      = -2
	listMaxTimestamp  = -3
	listEarliestLocal = -4
)

func (a *Agent) handleListOffsets(ctx context.Context, c client, req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		t, known := a.cache.Topic(rt.Topic)
		known = known && a.servesTopic(t)
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			if !known || rp.Partition < 0 || rp.Partition >= t.Partitions {
				sp.ErrorCode = kerr.UnknownTopicOrPartition.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			tp := coord.TP{Topic: t.ID, Partition: rp.Partition}
			if l, ok := a.cache.Leader(tp); ok {
				sp.LeaderEpoch = l.Epoch
			}
			offset, ts, err := a.listOffset(ctx, tp, rp.Timestamp)
			if rp.Timestamp == listLatest && req.IsolationLevel == 1 {
				offset = a.lastStable(tp, offset) // read_committed: the last stable offset
			}
			sp.ErrorCode = kafkaFetchCode(err)
			sp.Offset, sp.Timestamp = offset, ts
			if req.Version == 0 {
				sp.OldStyleOffsets = []int64{offset}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// listOffset answers one partition: the offset for ts and the timestamp found there (-1 when the
// answer is not a record).
func (a *Agent) listOffset(ctx context.Context, tp coord.TP, ts int64) (int64, int64, error) {
	hwm, start := a.cache.HighWatermark(tp), a.cache.LogStart(tp)
	switch ts {
	case listLatest:
		return hwm, -1, nil
	case listEarliest, listEarliestLocal:
		return start, -1, nil
	case listMaxTimestamp:
		return a.maxTimestampOffset(ctx, tp, start)
	}
	if ts < 0 {
		return -1, -1, kerr.InvalidRequest
	}
	for _, e := range a.cache.Entries(tp, start, math.MaxInt64) {
		if e.MaxTimestamp < ts {
			continue
		}
		offset, found, err := a.firstRecordAt(ctx, e, ts)
		if err != nil || found >= 0 {
			return offset, found, err
		}
	}
	return -1, -1, nil // no record that late: Kafka answers offset -1
}

// firstRecordAt finds in entry e the first record whose timestamp is at least ts: its offset and
// timestamp, or -1, -1. In a segment only the blocks whose newest batch is that late are decoded.
func (a *Agent) firstRecordAt(ctx context.Context, e coord.IndexEntry, ts int64) (int64, int64, error) {
	if e.Segment == nil {
		recs, err := a.entryRecords(ctx, e)
		return firstAt(recs, ts), atTime(recs, ts), err
	}
	blocks, err := a.segmentBlocks(ctx, e.Segment)
	if err != nil {
		return -1, -1, err
	}
	for _, b := range blocks {
		if b.MaxTimestamp < ts {
			continue
		}
		recs, err := a.blockRecords(ctx, e.Segment.Object, b)
		if err != nil {
			return -1, -1, err
		}
		if o := firstAt(recs, ts); o >= 0 {
			return o, atTime(recs, ts), nil
		}
	}
	return -1, -1, nil
}

// firstAt is the offset of the first of recs whose timestamp is at least ts, -1 if none is;
// atTime its timestamp.
func firstAt(recs []*kgo.Record, ts int64) int64 {
	for _, r := range recs {
		if r.Timestamp.UnixMilli() >= ts {
			return r.Offset
		}
	}
	return -1
}

func atTime(recs []*kgo.Record, ts int64) int64 {
	for _, r := range recs {
		if ms := r.Timestamp.UnixMilli(); ms >= ts {
			return ms
		}
	}
	return -1
}

// maxTimestampOffset finds the record with the largest timestamp (the first of equals).
func (a *Agent) maxTimestampOffset(ctx context.Context, tp coord.TP, start int64) (int64, int64, error) {
	var best coord.IndexEntry
	found := false
	for _, e := range a.cache.Entries(tp, start, math.MaxInt64) {
		if !found || e.MaxTimestamp > best.MaxTimestamp {
			best, found = e, true
		}
	}
	if !found {
		return -1, -1, nil
	}
	recs, err := a.newestRecords(ctx, best)
	if err != nil {
		return -1, -1, err
	}
	offset, ts := int64(-1), int64(-1)
	for _, r := range recs {
		if ms := r.Timestamp.UnixMilli(); ms > ts {
			offset, ts = r.Offset, ms
		}
	}
	return offset, ts, nil
}

// newestRecords decodes the records of entry e among which its newest is: all of an uncompacted
// entry's, the newest block's of a segment.
func (a *Agent) newestRecords(ctx context.Context, e coord.IndexEntry) ([]*kgo.Record, error) {
	if e.Segment == nil {
		return a.entryRecords(ctx, e)
	}
	blocks, err := a.segmentBlocks(ctx, e.Segment)
	if err != nil || len(blocks) == 0 {
		return nil, err
	}
	best := blocks[0]
	for _, b := range blocks[1:] {
		if b.MaxTimestamp > best.MaxTimestamp {
			best = b
		}
	}
	return a.blockRecords(ctx, e.Segment.Object, best)
}

// blockRecords decodes the records of one segment block, whose batches carry their offsets.
func (a *Agent) blockRecords(ctx context.Context, object string, b segstore.Block) ([]*kgo.Record, error) {
	data, err := a.reader.Extent(ctx, blockExtent(object, b))
	if err != nil {
		return nil, err
	}
	return decodeBatches(data, b.FirstOffset, b.LastOffset+1)
}

// entryRecords decodes every record of one index entry, with their assigned offsets. Only ListOffsets
// by timestamp decodes records; the produce and fetch paths never do.
func (a *Agent) entryRecords(ctx context.Context, e coord.IndexEntry) ([]*kgo.Record, error) {
	var batches []byte
	base := e.BaseOffset
	for _, x := range e.Extents {
		data, err := a.reader.Extent(ctx, x)
		if err != nil {
			return nil, err
		}
		if batches, base, err = kwire.PatchBatches(batches, data, base, int32(e.Epoch), 0); err != nil {
			return nil, err
		}
	}
	return decodeBatches(batches, e.BaseOffset, base)
}

// decodeBatches decodes the records of batches that carry their offsets, from offset from; hwm is the
// offset after the last.
func decodeBatches(batches []byte, from, hwm int64) ([]*kgo.Record, error) {
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
		KeepControlRecords: false,
		Offset:             from,
		Topic:              "",
		Partition:          0,
	}, &kmsg.FetchResponseTopicPartition{RecordBatches: batches, HighWatermark: hwm}, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		return nil, fp.Err
	}
	return fp.Records, nil
}
