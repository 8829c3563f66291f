package coord

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Markers (docs/INTERNALS.md, "Markers: how commit and abort reach the partitions"). A partition's
// leader commits the markers of one transaction for the partitions it leads in Txns of their own,
// each guarded, besides each partition's leader key, by the transactional id's key still being at the
// revision of the Prepare write that ordered them:
//
//	If(  CreateRevision(leaders/<t>/<p>) == epoch          for each partition
//	     ModRevision(txns/<ns>/<id>) == guard version
//	     CreateRevision(commits/<record>) == 0 )
//	Then(Put(commits/<record>, record with a marker entry per partition))
//	Else(Get(leaders/<t>/<p>)…, Get(txns/<ns>/<id>), Get(commits/<record>))
//
// So a coordinator that lost its shard, or a marker applied late (after the transaction completed
// and another began), changes nothing. The record key makes an attempt sent again after a timeout
// safe, as for data commits.

// MarkerCommit is one partition's marker as its leader sequenced it.
type MarkerCommit struct {
	TP          TP
	Epoch       int64 // fencing epoch: the leader key's create revision
	Offset      int64 // the marker's offset
	LeaderEpoch int64 // the leader epoch clients are told, recorded in the entry
	Time        int64 // unix ms, the control batch's timestamp
	Marker      TxnMarker
}

// CommitMarkers commits ms, the markers of the transaction guard names, and returns one error per
// marker: nil (committed), ErrFenced (its partition's leader key changed), ErrTxnChanged (the
// transactional id's key is no longer at guard.Version: nothing of that Txn was written), or another
// error, whose outcome is unknown. A partition appears at most once. Markers are packed into Txns of
// the client's operation limit; each Txn stands alone (markers are idempotent at the leader).
func (s *Session) CommitMarkers(ctx context.Context, guard TxnGuard, ms []MarkerCommit) []error {
	errs := make([]error, len(ms))
	if err := validateGroupNS(guard.NS); err != nil || guard.Version <= 0 {
		for i := range errs {
			errs[i] = fmt.Errorf("coord: markers of %q: invalid guard %+v: %v", guard.ID, guard, err)
		}
		return errs
	}
	seen := map[TP]bool{}
	var valid []int
	for i, m := range ms {
		if err := validateMarker(m); err != nil {
			errs[i] = err
			continue
		}
		if seen[m.TP] {
			errs[i] = fmt.Errorf("coord: marker of %s twice in one call", m.TP)
			continue
		}
		seen[m.TP] = true
		valid = append(valid, i)
	}
	// The markers of a Txn that failed on another partition's fenced compare are sent once more, in
	// a Txn of their own (every attempt of the failed one fails that compare again).
	for round := 1; round <= commitRounds && len(valid) > 0; round++ {
		per := max(s.c.limits().ops-3, 1) // each Txn: one compare per partition, the guard, the record key
		for rest := valid; len(rest) > 0; {
			n := min(len(rest), per)
			s.commitMarkerTxn(ctx, guard, ms, rest[:n], errs)
			rest = rest[n:]
		}
		var retry []int
		for _, i := range valid {
			if errors.Is(errs[i], errMarkerNotWritten) {
				retry = append(retry, i)
			}
		}
		valid = retry
	}
	return errs
}

func validateMarker(m MarkerCommit) error {
	if m.Epoch <= 0 || m.Offset < 0 || m.TP.Partition < 0 || m.Marker.ProducerID < 0 || m.Marker.Epoch < 0 ||
		m.Marker.FirstOffset < -1 || m.Marker.FirstOffset >= m.Offset {
		return fmt.Errorf("coord: marker of %s: invalid epoch %d, offset %d, producer %d/%d or first offset %d", m.TP, m.Epoch,
			m.Offset, m.Marker.ProducerID, m.Marker.Epoch, m.Marker.FirstOffset)
	}
	return nil
}

// commitMarkerTxn commits the markers ms[idx] in one Txn and sets their errors.
func (s *Session) commitMarkerTxn(ctx context.Context, guard TxnGuard, ms []MarkerCommit, idx []int, errs []error) {
	key := s.c.keys.commit(newRecordID())
	txnKey := s.c.keys.txn(guard.NS, guard.ID)
	r := Record{Time: time.Now().UnixMilli()}
	var cmps []clientv3.Cmp
	var gets []clientv3.Op
	for _, i := range idx {
		m := ms[i]
		mk := m.Marker
		mk.TxnVersion = guard.Version
		r.Entries = append(r.Entries, RecordEntry{TP: m.TP, Marker: &mk,
			Entry: IndexEntry{BaseOffset: m.Offset, LastOffset: m.Offset, Epoch: m.LeaderEpoch, MaxTimestamp: m.Time}})
		leader := s.c.keys.leader(m.TP)
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(leader), "=", m.Epoch))
		gets = append(gets, clientv3.OpGet(leader))
	}
	value := string(encodeRecord(nil, &r))
	cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(txnKey), "=", guard.Version),
		clientv3.Compare(clientv3.CreateRevision(key), "=", 0))
	gets = append(gets, clientv3.OpGet(txnKey, clientv3.WithKeysOnly()), clientv3.OpGet(key))
	resp, attempts, err := s.c.txnAttempts(ctx, txnCommit, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.c.etcd.Txn(ctx).If(cmps...).Then(clientv3.OpPut(key, value)).Else(gets...).Commit()
	})
	set := func(err error) {
		for _, i := range idx {
			errs[i] = err
		}
	}
	switch {
	case err != nil:
		if attempts > 1 {
			err = fmt.Errorf("%w (after %d attempts)", err, attempts)
		}
		set(fmt.Errorf("coord: markers of %q: %w", guard.ID, err))
		return
	case resp.Succeeded:
		set(nil)
		return
	}
	rs := resp.Responses
	if kvs := rs[len(idx)+1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		if string(kvs[0].Value) == value {
			s.c.log.Info("markers found applied by an earlier attempt whose answer was lost", "record", key)
			set(nil)
			return
		}
		set(fmt.Errorf("coord: commit record %s exists with other contents", key))
		return
	}
	fenced := false
	for j, i := range idx {
		var current int64
		if kvs := rs[j].GetResponseRange().GetKvs(); len(kvs) > 0 {
			current = kvs[0].CreateRevision
		}
		if current != ms[i].Epoch {
			fenced = true
			s.c.metrics.fenced.Inc()
			errs[i] = fmt.Errorf("%w: marker of %s at epoch %d, leader key now epoch %d", ErrFenced, ms[i].TP, ms[i].Epoch, current)
		}
	}
	var now int64
	if kvs := rs[len(idx)].GetResponseRange().GetKvs(); len(kvs) > 0 {
		now = kvs[0].ModRevision
	}
	for _, i := range idx {
		switch {
		case errs[i] != nil:
		case now != guard.Version:
			errs[i] = fmt.Errorf("%w: %q at version %d, markers ordered at %d", ErrTxnChanged, guard.ID, now, guard.Version)
		case fenced:
			// Not fenced itself, but its Txn failed on another partition's compare: not written.
			errs[i] = errMarkerNotWritten
		default:
			errs[i] = errors.New("coord: markers: a compare failed that the reads do not explain")
		}
	}
}

// errMarkerNotWritten: a marker that shared its Txn with a fenced partition's; nothing was written and
// it may be committed again.
var errMarkerNotWritten = errors.New("coord: marker not written: its Txn failed on another partition's fenced compare")
