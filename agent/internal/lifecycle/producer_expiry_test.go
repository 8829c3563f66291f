package lifecycle

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// producerView is a view of one partition whose producers are given, counting how often the
// producer states are rebuilt.
type producerView struct {
	producers []coord.ProducerState
	builds    int
}

func (v *producerView) PartitionIndex(coord.TP) (coord.PartitionIndex, bool) {
	return coord.PartitionIndex{}, true
}

func (v *producerView) PartitionState(coord.TP) (coord.PartitionState, bool) {
	v.builds++
	return coord.PartitionState{Producers: slices.Clone(v.producers)}, true
}

func (v *producerView) TxnState(coord.TP, int64) (int64, []coord.AbortedTxn) { return 0, nil }

func (v *producerView) WaitRevision(context.Context, int64) error { return nil }

// expiryWriter records the producers expired and drops them from the view.
type expiryWriter struct {
	Writer
	view    *producerView
	expired []int64
}

func (w *expiryWriter) WriteProducers(_ context.Context, _ coord.TP, _ int64, _ []coord.ProducerState, expired []int64) (int64, error) {
	w.expired = append(w.expired, expired...)
	w.view.producers = slices.DeleteFunc(w.view.producers, func(p coord.ProducerState) bool { return slices.Contains(expired, p.ID) })
	return 1, nil
}

// TestProducerExpiryCheckedAtIntervals: a pass visits every led partition each second, but rebuilds a
// partition's producer states for the expiry check at most every tenth of the expiration (at most a
// minute), and an idle producer still expires within a tenth of the expiration after it is due.
func TestProducerExpiryCheckedAtIntervals(t *testing.T) {
	t.Parallel()
	start := time.UnixMilli(1_700_000_000_000)
	now := start
	const expiration = 10 * time.Minute // checks every minute
	view := &producerView{producers: []coord.ProducerState{
		{ID: 1, LastTime: start.UnixMilli()},
		{ID: 2, LastTime: start.Add(5 * time.Minute).UnixMilli()},
	}}
	w := &expiryWriter{view: view}
	m := NewMaintainer(MaintainConfig{ProducerExpiration: expiration, Now: func() time.Time { return now }}, view, nil, nil)
	lead := Lead{TP: coord.TP{Partition: 3}, Epoch: 7}
	other := Lead{TP: coord.TP{Partition: 4}, Epoch: 7}

	pass := func() {
		t.Helper()
		if err := m.expireProducers(context.Background(), lead, w); err != nil {
			t.Fatal(err)
		}
	}
	pass()
	if view.builds != 1 {
		t.Fatalf("first pass: %d producer state builds, want 1", view.builds)
	}
	for range 59 { // a pass a second for the rest of the first minute: no check
		now = now.Add(time.Second)
		pass()
	}
	if view.builds != 1 {
		t.Fatalf("within a minute of the last check: %d builds, want 1", view.builds)
	}
	if err := m.expireProducers(context.Background(), other, w); err != nil || view.builds != 2 {
		t.Fatalf("another partition is checked on its own schedule: builds %d (want 2), err %v", view.builds, err)
	}

	// Producer 1 is due at start+10m; passes every second until start+12m.
	now = start.Add(time.Minute)
	for now.Before(start.Add(12 * time.Minute)) {
		pass()
		if len(w.expired) > 0 {
			break
		}
		now = now.Add(time.Second)
	}
	if !slices.Equal(w.expired, []int64{1}) {
		t.Fatalf("expired %v, want [1]", w.expired)
	}
	if late := now.Sub(start.Add(expiration)); late > expiration/10 {
		t.Fatalf("producer 1 expired %v after it was due, more than a tenth of the expiration", late)
	}
	if builds := view.builds; builds > 2+11 {
		t.Fatalf("%d producer state builds over 11 minutes of passes, want at most one a minute", builds)
	}

	// A partition led again is checked at once.
	m.Forget(lead.TP)
	builds := view.builds
	pass()
	if view.builds != builds+1 {
		t.Fatalf("after Forget: %d builds, want %d", view.builds, builds+1)
	}
}

// A producer with an open transaction is neither expired however idle, nor dropped by the producer
// limit: its snapshot holds the transaction's first offset, which the last stable offset waits on.
func TestOpenTransactionProducersKept(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000)
	idle := now.Add(-time.Hour).UnixMilli()
	view := &producerView{producers: []coord.ProducerState{
		{ID: 1, LastTime: idle},
		{ID: 2, LastTime: idle, TxnOpen: true, TxnFirst: 5},
	}}
	w := &expiryWriter{view: view}
	m := NewMaintainer(MaintainConfig{ProducerExpiration: time.Minute, Now: func() time.Time { return now }}, view, nil, nil)
	if err := m.expireProducers(context.Background(), Lead{TP: coord.TP{Partition: 1}, Epoch: 1}, w); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(w.expired, []int64{1}) {
		t.Fatalf("expired %v, want [1] (2's transaction is open)", w.expired)
	}

	batch := func(off int64) []coord.SeqBatch { return []coord.SeqBatch{{LastOffset: off}} }
	ps := []coord.ProducerState{{ID: 1, Batches: batch(30)}, {ID: 2, Batches: batch(5), TxnOpen: true}, {ID: 3, Batches: batch(20)},
		{ID: 4, Batches: batch(3), TxnOpen: true}}
	ids := func(l []coord.ProducerState) []int64 {
		var out []int64
		for _, p := range l {
			out = append(out, p.ID)
		}
		slices.Sort(out)
		return out
	}
	if kept, dropped := RecentProducers(ps, 3); !slices.Equal(ids(kept), []int64{1, 2, 4}) || !slices.Equal(ids(dropped), []int64{3}) {
		t.Errorf("limit 3 kept %v, dropped %v; want the open ones and the most recent", ids(kept), ids(dropped))
	}
	if kept, dropped := RecentProducers(ps, 1); !slices.Equal(ids(kept), []int64{2, 4}) || !slices.Equal(ids(dropped), []int64{1, 3}) {
		t.Errorf("limit 1 kept %v, dropped %v; want both open ones", ids(kept), ids(dropped))
	}
}
