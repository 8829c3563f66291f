package coord

import (
	"context"
	"encoding/json"
	"fmt"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// nextOffsets returns, for each partition, its last index entry's LastOffset+1 (0 when empty) as
// of revision rev. The next offset is not stored anywhere: it is derived from the last entry.
//
// It reads in two passes because etcd cannot read a range backwards: a "descending, limit 1"
// Get makes the server load and sort the whole range before answering. Keys-only, that costs an
// in-memory index walk (etcd 3.7 answers keys-only ranges without touching its database); with
// values it would read every index entry of the partition from disk. So the first pass finds
// each partition's last key, keys only, and the second reads just those values. Each pass costs
// one operation per partition, packed into Txns of MaxTxnOps, sent one after the other so that a
// status read does not hit etcd with a burst.
func (c *Client) nextOffsets(ctx context.Context, rev int64, tps []TP) ([]int64, error) {
	last := make([]clientv3.Op, len(tps))
	for i, tp := range tps {
		last[i] = clientv3.OpGet(c.keys.partIndex(tp), clientv3.WithPrefix(), clientv3.WithKeysOnly(),
			clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1), clientv3.WithRev(rev))
	}
	lastKeys, err := c.readAt(ctx, last)
	if err != nil {
		return nil, fmt.Errorf("coord: status: last index keys: %w", err)
	}
	var gets []clientv3.Op
	var of []int // of[j]: the partition gets[j] reads
	for i, r := range lastKeys {
		if kvs := r.GetKvs(); len(kvs) > 0 {
			gets = append(gets, clientv3.OpGet(string(kvs[0].Key), clientv3.WithRev(rev)))
			of = append(of, i)
		}
	}
	entries, err := c.readAt(ctx, gets)
	if err != nil {
		return nil, fmt.Errorf("coord: status: last index entries: %w", err)
	}
	next := make([]int64, len(tps))
	for j, r := range entries {
		kvs := r.GetKvs()
		if len(kvs) == 0 { // cannot happen at a pinned revision; be defensive
			return nil, fmt.Errorf("coord: status: index entry of %s vanished at revision %d", tps[of[j]], rev)
		}
		var e IndexEntry
		if err := json.Unmarshal(kvs[0].Value, &e); err != nil {
			return nil, fmt.Errorf("coord: status: decode %s: %w", kvs[0].Key, err)
		}
		next[of[j]] = e.LastOffset + 1
	}
	return next, nil
}

// readAt runs read-only ops in Txns of at most the client's operation limit and returns their
// answers in order. A Txn etcd refuses for too many operations is sent again, smaller, once the
// client fell back to etcd's default limit (fallBackTxnOps): it only reads.
func (c *Client) readAt(ctx context.Context, ops []clientv3.Op) ([]*pb.RangeResponse, error) {
	out := make([]*pb.RangeResponse, 0, len(ops))
	for len(ops) > 0 {
		limit := c.maxTxnOps()
		n := min(len(ops), limit)
		resp, err := c.etcd.Txn(ctx).Then(ops[:n]...).Commit()
		if isTooManyOps(err) && c.fallBackTxnOps(limit) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, r := range resp.Responses {
			out = append(out, r.GetResponseRange())
		}
		ops = ops[n:]
	}
	return out, nil
}
