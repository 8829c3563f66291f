package coord

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Transactional offsets. TxnOffsetCommit gives a group offsets that become its committed offsets
// only when the producer's transaction commits (and are dropped when it aborts). Until then they
// live apart, one key per group and producer, written by the group's coordinator like any group
// write (fenced by the shard, compared on the group's version):
//
//	groups/<ns>/pending/<group, path-escaped>/<producer id>    JSON PendingOffsets
//
// The transaction's marker reaches the group as one group write that moves the producer's pending
// offsets into the offsets (commit) or only deletes them (abort), guarded also by the transaction's
// state (GroupWrite.Txn): a marker whose decision is no longer the transaction's current state
// changes nothing. A group with pending offsets has metadata (an Empty group at least), so that a
// coordinator taking its shard over loads them with it.

// PendingOffsets are the offsets one producer's ongoing transaction committed for a group.
type PendingOffsets struct {
	ProducerID int64         `json:"pid"`
	Epoch      int16         `json:"epoch"`
	Offsets    []GroupOffset `json:"offsets"`
}

// TxnGuard names a transactional id's state at a version (TxnSnapshot.Version, or what WriteTxn
// returned): a write guarded by it applies only while the state is still at that version.
type TxnGuard struct {
	NS, ID  string
	Version int64
}

// groupPendings is the prefix of a group's pending offsets.
func (k keys) groupPendings(ns, group string) string {
	return k.prefix + dirGroups + ns + "/pending/" + url.PathEscape(group) + "/"
}

func (k keys) groupPending(ns, group string, pid int64) string {
	return k.groupPendings(ns, group) + strconv.FormatInt(pid, 10)
}

// pendingOps appends to ops the puts of w.Pending and then the deletions of w.DeletePending.
func (c *Client) pendingOps(ns, group string, w GroupWrite, ops []clientv3.Op) ([]clientv3.Op, error) {
	seen := map[int64]bool{}
	for _, p := range w.Pending {
		if seen[p.ProducerID] || p.ProducerID < 0 {
			return nil, fmt.Errorf("coord: write group %q: pending offsets of producer %d twice or invalid", group, p.ProducerID)
		}
		seen[p.ProducerID] = true
		for _, o := range p.Offsets {
			if o.Partition < 0 || o.Topic.IsZero() {
				return nil, fmt.Errorf("coord: write group %q: invalid partition %s", group, o.TP())
			}
		}
		val, _ := json.Marshal(p) // numbers and strings: cannot fail
		ops = append(ops, clientv3.OpPut(c.keys.groupPending(ns, group, p.ProducerID), string(val)))
	}
	for _, pid := range w.DeletePending {
		if seen[pid] {
			return nil, fmt.Errorf("coord: write group %q: pending offsets of producer %d both written and deleted", group, pid)
		}
		seen[pid] = true
		ops = append(ops, clientv3.OpDelete(c.keys.groupPending(ns, group, pid)))
	}
	return ops, nil
}

func decodePending(kvs []*mvccpb.KeyValue) ([]PendingOffsets, error) {
	out := make([]PendingOffsets, 0, len(kvs))
	for _, kv := range kvs {
		var p PendingOffsets
		if err := json.Unmarshal(kv.Value, &p); err != nil {
			return nil, fmt.Errorf("coord: decode %s: %w", kv.Key, err)
		}
		out = append(out, p)
	}
	return out, nil
}
