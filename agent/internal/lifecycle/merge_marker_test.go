package lifecycle

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// A tail holding a transaction marker (an entry with no extents) merges into a segment that holds
// the marker's control batch at its offset, every record around it staying at its own, and, for an
// abort, the aborted transaction in the segment's key.
func TestMergeWritesMarkers(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	ctx := context.Background()
	now := time.UnixMilli(1_700_000_000_000)
	p := DefaultPolicy()
	p.TailEntries, p.FanIn = 3, 4
	marker := func(dst []byte, e coord.IndexEntry) []byte {
		return kwire.AppendControlBatch(dst, kwire.Marker{BaseOffset: e.BaseOffset, LeaderEpoch: int32(e.Epoch),
			ProducerID: e.Marker.ProducerID, ProducerEpoch: e.Marker.Epoch, Commit: e.Marker.Commit, Timestamp: e.MaxTimestamp})
	}
	m := NewMaintainer(MaintainConfig{AgentID: "a1", Grace: time.Hour, Policy: func(coord.Topic) Policy { return p },
		Patch: patch, Marker: marker, Now: func() time.Time { return now }}, c.cache, storeExtents{c.store}, c.store)

	next := c.produce(t, 0, 10, now.UnixMilli()-60_000)
	put, err := c.client.Etcd().Put(ctx, c.client.Prefix()+"txns/default/tx", "{}")
	if err != nil {
		t.Fatal(err)
	}
	errs := c.sess.CommitMarkers(ctx, coord.TxnGuard{NS: "default", ID: "tx", Version: put.Header.Revision}, []coord.MarkerCommit{{
		TP: c.lead.TP, Epoch: c.lead.Epoch, Offset: next, LeaderEpoch: int64(c.epoch), Time: now.UnixMilli() - 30_000,
		Marker: coord.TxnMarker{ProducerID: 9, Epoch: 1, Commit: false, FirstOffset: 5}}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	c.sync(t)
	next = c.produce(t, next+1, 10, now.UnixMilli()-10_000)
	for range 3 {
		if _, err := m.Maintain(ctx, c.lead, c.sess); err != nil {
			t.Fatal(err)
		}
	}
	pi, _ := c.cache.PartitionIndex(c.lead.TP)
	if len(pi.Tail) != 0 || len(pi.Segments) == 0 || pi.HighWatermark != next {
		t.Fatalf("after merging: tail %d, segments %d, hwm %d (want %d)", len(pi.Tail), len(pi.Segments), pi.HighWatermark, next)
	}
	// The abort marker's transaction is in the segment's aborted list, whatever is merged later.
	var aborted []coord.AbortedTxn
	for _, s := range pi.Segments {
		aborted = append(aborted, s.Segment.Aborted...)
	}
	if want := []coord.AbortedTxn{{ProducerID: 9, FirstOffset: 5, Marker: 10}}; !slices.Equal(aborted, want) {
		t.Fatalf("segments' aborted transactions %+v, want %+v", aborted, want)
	}
	if _, ab := c.cache.TxnState(c.lead.TP, 0); !slices.Equal(ab, aborted) {
		t.Fatalf("the view's aborted transactions %+v, want %+v", ab, aborted)
	}
	got := c.readAll(t)
	for o := range next {
		want := fmt.Sprintf("v%d", o)
		if o == 10 {
			var v kmsg.EndTxnMarker
			if err := v.ReadFrom([]byte(got[o])); err != nil {
				t.Fatalf("offset 10: %q is not a marker's value: %v", got[o], err)
			}
			continue
		}
		if got[o] != want {
			t.Fatalf("offset %d holds %q, want %q", o, got[o], want)
		}
	}
}
