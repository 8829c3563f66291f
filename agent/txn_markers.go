package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/txn"
	"github.com/streamhouse/streamhouse/coord"
)

// Markers (docs/INTERNALS.md, "Markers: how commit and abort reach the partitions"). The transaction
// coordinator's txnMarkers asks each partition's leader to write the transaction's marker; a leader
// sequences the markers of its partitions on its sequencer, between flushes (a marker takes the
// partition's next offset), and commits them with coord's CommitMarkers: guarded by each leader key
// and by the transactional id's key at the Prepare write's revision. A marker whose producer's last
// marker on the partition carried the same revision is answered as written without writing.

// errMarkerNotLed: a marker for a partition no live agent leads now; the coordinator tries again.
var errMarkerNotLed = errors.New("agent: a transaction marker's partition has no leader now")

// markerWork is one transaction's markers for partitions this agent leads, for the sequencer; or,
// with group set, its end for a group this agent coordinates (txn_offsets.go), not sequenced.
type markerWork struct {
	guard  coord.TxnGuard
	marker coord.TxnMarker
	tps    []coord.TP
	group  string
	errs   []error // one per tp (one for a group), set by the sequencer
}

// txnMarkers is the agent's txn.Markers.
type txnMarkers struct{ a *Agent }

// WriteMarkers writes m's marker into each of its partitions through their leaders. Partitions of
// deleted topics are skipped, as Kafka skips them.
func (t txnMarkers) WriteMarkers(ctx context.Context, m txn.Marker) error {
	a := t.a
	local := &markerWork{guard: m.Guard, marker: coord.TxnMarker{ProducerID: m.ProducerID, Epoch: m.Epoch, Commit: m.Commit}}
	remote := map[string][]coord.TP{}
	for _, tp := range m.Partitions {
		if tt, ok := a.cache.TopicByID(tp.Topic); !ok || tp.Partition >= tt.Partitions {
			continue
		}
		switch leader, ok := a.markerLeader(tp); {
		case !ok:
			return fmt.Errorf("%w: %s", errMarkerNotLed, tp)
		case leader == a.cfg.ID:
			local.tps = append(local.tps, tp)
		default:
			remote[leader] = append(remote[leader], tp)
		}
	}
	// Every leader at once; the coordinator sends them all again if any failed (idempotent).
	errs := make([]error, 0, len(remote)+1)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for leader, tps := range remote {
		w := &markerWork{guard: local.guard, marker: local.marker, tps: tps}
		wg.Go(func() {
			err := a.writeRemoteMarkers(ctx, leader, w)
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		})
	}
	if len(local.tps) > 0 {
		err := a.writeLocalMarkers(ctx, local)
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return a.resolveGroups(ctx, local.guard, local.marker, m.Groups)
}

// markerLeader names the agent that leads tp: this one when it does.
func (a *Agent) markerLeader(tp coord.TP) (string, bool) {
	if a.lead.leading(tp) != nil {
		return a.cfg.ID, true
	}
	l, ok := a.cache.Leader(tp)
	if !ok {
		return "", false
	}
	return l.Agent, true
}

// writeLocalMarkers has the sequencer write w and returns the first error.
func (a *Agent) writeLocalMarkers(ctx context.Context, w *markerWork) error {
	w.errs = make([]error, len(w.tps))
	rw := &remoteWork{markers: w, done: make(chan struct{})}
	select {
	case a.remote <- rw:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !waitClosed(ctx, rw.done) {
		return ctx.Err()
	}
	return errors.Join(w.errs...)
}

// sequenceMarkers writes w's markers (sequencer goroutine): each at its partition's next offset,
// committed together; a partition this agent no longer leads is errNotLeader.
func (a *Agent) sequenceMarkers(ctx context.Context, w *markerWork) {
	now := time.Now()
	var ms []coord.MarkerCommit
	var at []int
	var pls []*partitionLeader
	for i, tp := range w.tps {
		pl := a.lead.leading(tp)
		if pl == nil {
			w.errs[i] = errNotLeader
			continue
		}
		if st, ok := pl.producers[w.marker.ProducerID]; ok && st.MarkerRev == w.guard.Version {
			continue // written before
		}
		mk := w.marker
		mk.FirstOffset = -1
		if st, ok := pl.producers[w.marker.ProducerID]; ok && st.TxnOpen {
			mk.FirstOffset = st.TxnFirst
		}
		ms = append(ms, coord.MarkerCommit{TP: tp, Epoch: pl.epoch, Offset: pl.next, LeaderEpoch: int64(pl.clientEpoch),
			Time: now.UnixMilli(), Marker: mk})
		at, pls = append(at, i), append(pls, pl)
	}
	if len(ms) == 0 {
		return
	}
	errs := a.commitMarkers(ctx, w.guard, ms)
	for j, err := range errs {
		i, pl, mc := at[j], pls[j], ms[j]
		switch {
		case err == nil:
		case errors.Is(err, coord.ErrTxnChanged):
			w.errs[i] = err // the coordinator's decision is no longer current: nothing was written
			continue
		default:
			w.errs[i] = err
			a.commitFailed(&partitionCommit{pl: pl}, err)
			continue
		}
		mk := mc.Marker
		mk.TxnVersion = w.guard.Version
		pl.next = mc.Offset + 1
		st := pl.producers[mk.ProducerID]
		if st.ID != mk.ProducerID || mk.Epoch > st.Epoch {
			// A marker of a newer epoch (an abort after an epoch bump) fences the older producer here.
			st = coord.ProducerState{ID: mk.ProducerID, Epoch: mk.Epoch}
		}
		st.MarkerRev, st.LastTime = w.guard.Version, now.UnixMilli()
		st.TxnOpen, st.TxnFirst = false, 0
		pl.producers[mk.ProducerID] = st
		a.cache.Apply(pl.tp, coord.IndexEntry{BaseOffset: mc.Offset, LastOffset: mc.Offset, Epoch: mc.LeaderEpoch,
			MaxTimestamp: mc.Time, Marker: &mk})
	}
}

// commitMarkers is commit's counterpart for markers: through the current session, abandoned when it
// is lost; an error other than a fence or a changed transaction leaves the outcome unknown.
func (a *Agent) commitMarkers(ctx context.Context, guard coord.TxnGuard, ms []coord.MarkerCommit) []error {
	errs := a.onSession(ctx, len(ms), func(ctx context.Context, s session) []error { return s.CommitMarkers(ctx, guard, ms) })
	return unknownUnless(errs, coord.ErrFenced, coord.ErrTxnChanged)
}
