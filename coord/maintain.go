package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The writes of a partition's maintenance — segments, the log start, producer snapshots — are made by
// its leader alone, one at a time, each fenced like a commit by Compare(CreateRevision(leaders/<t>/<p>)
// == epoch): a leader that lost the partition writes nothing. They need no other compare: every key
// they replace was written under this epoch by this leader's serial maintenance, or under an older
// epoch, whose writes all applied before this leader's key was created (docs/INTERNALS.md,
// "Partition segments"). Each is idempotent, so it is sent again while attempts time out.

// WriteSegment installs a partition segment at its base offset, replacing the segments whose bases are
// in replaced (a merge; the view drops the uncompacted entries it covers by itself). It returns the
// revision the write applied at, for the caller's view to reach before planning the next one.
func (s *Session) WriteSegment(ctx context.Context, tp TP, epoch int64, seg IndexEntry, replaced []int64) (int64, error) {
	if seg.Segment == nil || seg.LastOffset < seg.BaseOffset || seg.BaseOffset < 0 {
		return 0, fmt.Errorf("coord: write segment of %s: not a segment: %+v", tp, seg)
	}
	val, err := json.Marshal(seg)
	if err != nil {
		return 0, fmt.Errorf("coord: write segment of %s: %w", tp, err)
	}
	ops := []clientv3.Op{clientv3.OpPut(s.c.keys.segment(tp, seg.BaseOffset), string(val))}
	for _, base := range replaced {
		if base != seg.BaseOffset {
			ops = append(ops, clientv3.OpDelete(s.c.keys.segment(tp, base)))
		}
	}
	return s.fencedWrite(ctx, tp, epoch, "write segment", ops)
}

// MoveLogStart sets tp's log start to offset and deletes the segments wholly below it (their bases in
// below). It returns the revision the write applied at.
func (s *Session) MoveLogStart(ctx context.Context, tp TP, epoch, offset int64, below []int64) (int64, error) {
	if offset < 0 {
		return 0, fmt.Errorf("coord: move the log start of %s to %d", tp, offset)
	}
	ops := []clientv3.Op{clientv3.OpPut(s.c.keys.logStart(tp), strconv.FormatInt(offset, 10))}
	for _, base := range below {
		ops = append(ops, clientv3.OpDelete(s.c.keys.segment(tp, base)))
	}
	return s.fencedWrite(ctx, tp, epoch, "move log start", ops)
}

// WriteProducers puts producer snapshots of tp and deletes those of the producers in expired, in as
// many fenced Txns as the client's limits need (any number of producers fits). It returns the revision
// of the last.
func (s *Session) WriteProducers(ctx context.Context, tp TP, epoch int64, put []ProducerState, expired []int64) (int64, error) {
	var ops []clientv3.Op
	for _, p := range put {
		val, err := json.Marshal(p)
		if err != nil {
			return 0, fmt.Errorf("coord: write producers of %s: %w", tp, err)
		}
		ops = append(ops, clientv3.OpPut(s.c.keys.producer(tp, p.ID), string(val)))
	}
	for _, id := range expired {
		ops = append(ops, clientv3.OpDelete(s.c.keys.producer(tp, id)))
	}
	var rev int64
	for len(ops) > 0 {
		n := s.c.opsThatFit(ops, 1)
		r, err := s.fencedWrite(ctx, tp, epoch, "write producers", ops[:n])
		if err != nil {
			return 0, err
		}
		rev, ops = r, ops[n:]
	}
	return rev, nil
}

// fencedWrite runs ops in one Txn guarded by tp's leader epoch. A failed compare is ErrFenced.
func (s *Session) fencedWrite(ctx context.Context, tp TP, epoch int64, what string, ops []clientv3.Op) (int64, error) {
	defer s.c.metrics.observeQuery(ctx, opMaintain, time.Now())
	leader := s.c.keys.leader(tp)
	resp, _, err := s.c.txnAttempts(ctx, txnMaintain, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return s.c.etcd.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(leader), "=", epoch)).Then(ops...).Commit()
	})
	if err != nil {
		return 0, fmt.Errorf("coord: %s of %s: %w", what, tp, err)
	}
	if !resp.Succeeded {
		return 0, fmt.Errorf("%w: %s of %s at epoch %d", ErrFenced, what, tp, epoch)
	}
	return resp.Header.Revision, nil
}

// opsThatFit is how many of ops, from the first, one Txn of the client's limits takes besides reserved
// operations of its own (at least one).
func (c *Client) opsThatFit(ops []clientv3.Op, reserved int) int {
	lim := c.limits()
	budget := lim.bytes()
	n := 0
	for n < len(ops) && n+reserved < lim.ops {
		size := len(ops[n].KeyBytes()) + len(ops[n].ValueBytes()) + txnOpBytes
		if n > 0 && size > budget {
			break
		}
		budget -= size
		n++
	}
	return max(n, 1)
}

// DeleteRecords deletes commit records (and legacy index keys) that Cache.DeadRecords listed, in Txns
// of the client's limits. No compare is needed: a record once dead stays dead.
func (c *Client) DeleteRecords(ctx context.Context, keys []string) error {
	defer c.metrics.observeQuery(ctx, opDeleteRecords, time.Now())
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpDelete(k)
	}
	for len(ops) > 0 {
		n := c.opsThatFit(ops, 0)
		if _, err := c.etcd.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return fmt.Errorf("coord: delete %d dead records: %w", n, err)
		}
		ops = ops[n:]
	}
	return nil
}

// CampaignGC makes this session the cluster's one garbage collector if no live session is: gc/leader
// on the session's lease. It reports whether the session holds it. Holding it only avoids duplicate
// work: everything GC deletes is safe to delete by any number of agents at once.
func (s *Session) CampaignGC(ctx context.Context) (bool, error) {
	if s.closed() {
		return false, ErrSessionClosed
	}
	key := s.c.keys.gcLeader()
	resp, err := s.c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, s.info.ID, clientv3.WithLease(s.LeaseID()))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, fmt.Errorf("coord: campaign for GC: %w", err)
	}
	if resp.Succeeded {
		return true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().GetKvs()
	return len(kvs) > 0 && clientv3.LeaseID(kvs[0].Lease) == s.LeaseID(), nil
}
