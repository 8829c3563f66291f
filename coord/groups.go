package coord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Consumer groups. A group coordinator keeps its groups in memory and persists here what must
// outlive it: each group's metadata (generation, protocol, members and their assignments) and its
// committed offsets. Every write is one or more Txns guarded by the leader key of the coordinator
// shard that owns the group — a partition of the internal offsets topic — exactly as index commits
// are guarded by their partition's leader key: a coordinator that lost its shard (lease expired,
// key re-created by a successor) gets ErrFenced and changes nothing.
//
// Keys, per agent group ns (consumer groups are a namespace of the agent group that serves them):
//
//	groups/<ns>/meta/<group, path-escaped>                              JSON GroupMeta
//	groups/<ns>/offsets/<group, path-escaped>/<topic id>/<partition>    JSON GroupOffset
//	groups/<ns>/version/<group, path-escaped>                           token of the group's last write
//	groups/<ns>/pending/<group, path-escaped>/<producer id>             JSON PendingOffsets
//
// The version key is the group's version: its ModRevision (0 when absent) changes with every write of
// the group, and each write compares it with the version the writer's state was loaded or last
// written at (GroupWrite.Version). A write based on a state that is no longer etcd's fails
// (ErrGroupChanged) instead of overwriting a newer one, and so does an attempt of a write that etcd
// applies late; that is what makes sending a group write's Txn again safe.
//
// Metadata lives apart from offsets so that a coordinator taking a shard over lists every group's
// metadata with one range read and reads offsets only for the groups of its shard.

// GroupFence is what every group write is guarded by: the coordinator shard and the epoch at which
// the writer leads it.
type GroupFence struct {
	Shard TP
	Epoch int64
}

// GroupProtocol is one protocol a member supports, with its opaque metadata.
type GroupProtocol struct {
	Name     string `json:"name"`
	Metadata []byte `json:"metadata,omitempty"`
}

// GroupMember is a member as persisted: enough for a successor coordinator to keep serving it.
type GroupMember struct {
	ID                 string          `json:"id"`
	InstanceID         *string         `json:"instanceId,omitempty"`
	ClientID           string          `json:"clientId"`
	ClientHost         string          `json:"clientHost"`
	SessionTimeoutMs   int32           `json:"sessionTimeoutMs"`
	RebalanceTimeoutMs int32           `json:"rebalanceTimeoutMs"`
	Protocols          []GroupProtocol `json:"protocols"`
	Assignment         []byte          `json:"assignment,omitempty"`
}

// GroupMeta is the value of groups/<ns>/meta/<group>.
type GroupMeta struct {
	State        string        `json:"state"` // Kafka's name: Empty, CompletingRebalance or Stable
	Generation   int32         `json:"generation"`
	ProtocolType string        `json:"protocolType,omitempty"`
	Protocol     string        `json:"protocol,omitempty"`
	Leader       string        `json:"leader,omitempty"`
	Members      []GroupMember `json:"members,omitempty"`
	// EmptySinceMs is when an Empty group became Empty (Unix ms; 0: unknown): offset retention
	// counts from it.
	EmptySinceMs int64 `json:"emptySinceMs,omitempty"`
}

// GroupOffset is the value of groups/<ns>/offsets/<group>/<t>/<p>: one committed offset.
type GroupOffset struct {
	Topic       TopicID `json:"topic"`
	Partition   int32   `json:"partition"`
	Offset      int64   `json:"offset"`
	LeaderEpoch int32   `json:"leaderEpoch"`
	Metadata    string  `json:"metadata,omitempty"`
	CommitMs    int64   `json:"commitMs"`
}

// TP is the partition the offset is committed for.
func (o GroupOffset) TP() TP { return TP{Topic: o.Topic, Partition: o.Partition} }

// GroupSnapshot is one group as stored.
type GroupSnapshot struct {
	Name    string
	Meta    *GroupMeta // nil when the group has no metadata
	Offsets []GroupOffset
	Pending []PendingOffsets // by producer id
	Version int64            // the group's version as read: what its next write must name in GroupWrite.Version
}

// GroupWrite is one change to a group. Delete removes the group (metadata and every offset) and
// excludes the other fields.
type GroupWrite struct {
	Meta          *GroupMeta
	Offsets       []GroupOffset
	DeleteOffsets []TP
	// Pending replaces the pending offsets of each producer named; DeletePending deletes those of
	// the producers named, after every other operation of the write.
	Pending       []PendingOffsets
	DeletePending []int64
	// Txn, when set, guards the write also by the state of a transactional id: it applies only while
	// that state is at the version named (a marker's resolution of pending offsets).
	Txn    *TxnGuard
	Delete bool
	// Version is the group's version the write is based on: GroupSnapshot.Version of its last
	// load, or what its last write returned (0: a group never written).
	Version int64
}

const dirGroups = "groups/"

func (k keys) groupMetas(ns string) string { return k.prefix + dirGroups + ns + "/meta/" }
func (k keys) groupMeta(ns, group string) string {
	return k.groupMetas(ns) + url.PathEscape(group)
}

func (k keys) groupVersion(ns, group string) string {
	return k.prefix + dirGroups + ns + "/version/" + url.PathEscape(group)
}

// groupOffsets is the prefix of a group's offsets; group names are escaped, so they hold no '/'.
func (k keys) groupOffsets(ns, group string) string {
	return k.prefix + dirGroups + ns + "/offsets/" + url.PathEscape(group) + "/"
}

func (k keys) groupOffset(ns, group string, tp TP) string {
	return k.groupOffsets(ns, group) + tp.Topic.String() + "/" + strconv.FormatInt(int64(tp.Partition), 10)
}

// validateGroupNS rejects namespaces that would break the key layout.
func validateGroupNS(ns string) error {
	if ns == "" || strings.ContainsAny(ns, "/\x00") {
		return fmt.Errorf("coord: group namespace %q: empty or contains '/' or NUL", ns)
	}
	return nil
}

// Query operations of the group store, labelled in streamhouse_metadata_store_query_duration_seconds.
const (
	opLoadGroups = "load_groups"
	opLoadGroup  = "load_group"
	opWriteGroup = "write_group"
)

// LoadGroups reads, at one revision, every group of namespace ns that keep accepts: its metadata
// and its offsets. A coordinator calls it once it leads a shard, with keep selecting the shard's
// groups; the read is linearizable, so it sees every write of the shard's previous coordinators.
func (c *Client) LoadGroups(ctx context.Context, ns string, keep func(group string) bool) ([]GroupSnapshot, error) {
	defer c.metrics.observeQuery(ctx, opLoadGroups, time.Now())
	if err := validateGroupNS(ns); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		out, err := c.loadGroups(ctx, ns, keep)
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
			continue // the pinned revision was compacted between our reads: read afresh
		}
		return out, err
	}
}

func (c *Client) loadGroups(ctx context.Context, ns string, keep func(string) bool) ([]GroupSnapshot, error) {
	metas, rev, err := c.rangeAll(ctx, c.keys.groupMetas(ns), 0)
	if err != nil {
		return nil, fmt.Errorf("coord: load groups of %q: %w", ns, err)
	}
	var out []GroupSnapshot
	for _, kv := range metas {
		name, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), c.keys.groupMetas(ns)))
		if err != nil || !keep(name) {
			continue
		}
		g := GroupSnapshot{Name: name, Meta: new(GroupMeta)}
		if err := json.Unmarshal(kv.Value, g.Meta); err != nil {
			return nil, fmt.Errorf("coord: load groups: decode %s: %w", kv.Key, err)
		}
		kvs, _, err := c.rangeAll(ctx, c.keys.groupOffsets(ns, name), rev)
		if err != nil {
			return nil, fmt.Errorf("coord: load group %q: %w", name, err)
		}
		if g.Offsets, err = decodeOffsets(kvs); err != nil {
			return nil, err
		}
		if kvs, _, err = c.rangeAll(ctx, c.keys.groupPendings(ns, name), rev); err != nil {
			return nil, fmt.Errorf("coord: load group %q: %w", name, err)
		}
		if g.Pending, err = decodePending(kvs); err != nil {
			return nil, err
		}
		ver, err := c.etcd.Get(ctx, c.keys.groupVersion(ns, name), clientv3.WithRev(rev))
		if err != nil {
			return nil, fmt.Errorf("coord: load group %q: %w", name, err)
		}
		if len(ver.Kvs) > 0 {
			g.Version = ver.Kvs[0].ModRevision
		}
		out = append(out, g)
	}
	return out, nil
}

// rangeAll reads every key under prefix, page by page, at rev (0: now). It returns the revision read.
func (c *Client) rangeAll(ctx context.Context, prefix string, rev int64) ([]*mvccpb.KeyValue, int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	var kvs []*mvccpb.KeyValue
	for key := prefix; ; {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(loadPageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := c.etcd.Get(ctx, key, opts...)
		if err != nil {
			return nil, 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		kvs = append(kvs, resp.Kvs...)
		if !resp.More || len(resp.Kvs) == 0 {
			return kvs, rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

func decodeOffsets(kvs []*mvccpb.KeyValue) ([]GroupOffset, error) {
	out := make([]GroupOffset, 0, len(kvs))
	for _, kv := range kvs {
		var o GroupOffset
		if err := json.Unmarshal(kv.Value, &o); err != nil {
			return nil, fmt.Errorf("coord: decode %s: %w", kv.Key, err)
		}
		out = append(out, o)
	}
	return out, nil
}

// LoadGroup reads one group (linearizable, one Txn). A group that was never written, or was
// deleted, has a nil Meta and no offsets.
func (c *Client) LoadGroup(ctx context.Context, ns, group string) (GroupSnapshot, error) {
	defer c.metrics.observeQuery(ctx, opLoadGroup, time.Now())
	if err := validateGroupNS(ns); err != nil {
		return GroupSnapshot{}, err
	}
	resp, err := c.etcd.Txn(ctx).Then(
		clientv3.OpGet(c.keys.groupMeta(ns, group)),
		clientv3.OpGet(c.keys.groupOffsets(ns, group), clientv3.WithPrefix()),
		clientv3.OpGet(c.keys.groupVersion(ns, group)),
		clientv3.OpGet(c.keys.groupPendings(ns, group), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return GroupSnapshot{}, fmt.Errorf("coord: load group %q: %w", group, err)
	}
	g := GroupSnapshot{Name: group}
	if kvs := resp.Responses[2].GetResponseRange().GetKvs(); len(kvs) > 0 {
		g.Version = kvs[0].ModRevision
	}
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		g.Meta = new(GroupMeta)
		if err := json.Unmarshal(kvs[0].Value, g.Meta); err != nil {
			return GroupSnapshot{}, fmt.Errorf("coord: load group %q: decode metadata: %w", group, err)
		}
	}
	if g.Offsets, err = decodeOffsets(resp.Responses[1].GetResponseRange().GetKvs()); err != nil {
		return GroupSnapshot{}, err
	}
	if g.Pending, err = decodePending(resp.Responses[3].GetResponseRange().GetKvs()); err != nil {
		return GroupSnapshot{}, err
	}
	return g, nil
}

// WriteGroup applies w to group, guarded by Compare(CreateRevision(leaders/<shard>) == f.Epoch) and
// Compare(ModRevision(groups/<ns>/version/<group>) == w.Version), and returns the group's new
// version. A write needing more operations (or bytes) than one Txn allows is split into several
// Txns, each guarded (each on the version the one before wrote), applied in order (metadata in the
// first); a failure stops the rest. A Txn etcd refuses for having more operations than its
// --max-txn-ops, or more bytes than its --max-request-bytes, is split again, smaller, and sent again
// (see Client.fallBack). It returns ErrFenced when the shard's leader key is no longer the one
// created at f.Epoch, ErrGroupChanged when the group is no longer at w.Version (its state was
// written since the caller read it: by an earlier write whose outcome was unknown, say). A Txn whose
// attempt times out (Config.CommitAttemptTimeout) or finds etcd unavailable is sent again, within
// Config.CommitTimeout: each Txn writes a token of its own to the version key, so an attempt that
// finds its token there knows an earlier one applied, and one that finds another version changes
// nothing. Any other error leaves the outcome unknown, as with any etcd write: the coordinator must
// reload the group before going on.
//
// A split write that fails after its first Txn has applied in part: a prefix of its operations,
// metadata first, each offset exactly as asked. That is harmless, which is why a write is split
// rather than bounded to one Txn (one Txn would refuse, at etcd's default 128 operations, the commit
// of a consumer assigned 127 partitions: clients commit every assigned partition in one request, and
// Kafka bounds an offset commit only by bytes):
//   - Offsets are independent per partition: Kafka answers an offset commit per partition and offers
//     no atomicity across partitions outside transactions (whose offsets wait apart until they
//     commit: groups_pending.go). The state left is the one the same client reaches by sending the
//     commit as several smaller ones and losing its connection after the first.
//   - The client is told the outcome is unknown (COORDINATOR_NOT_AVAILABLE, retriable): it retries
//     the whole commit, which converges, or commits newer offsets later.
//   - Nothing is served or written on the state before the write: the coordinator kills the group
//     on a failed write and reloads it from etcd, and a writer still on the old version is refused
//     by the version compare (ErrGroupChanged).
//   - No attempt of the failed Txn applies over a newer write: each Txn compares the version the
//     previous one wrote, as a write of one Txn does.
//
// A deletion (three operations) is never split; offset deletions split like commits, and what a
// failed one left is deleted by its retry (OffsetDelete) or by the next retention pass.
func (c *Client) WriteGroup(ctx context.Context, f GroupFence, ns, group string, w GroupWrite) (version int64, err error) {
	defer c.metrics.observeQuery(ctx, opWriteGroup, time.Now())
	if err := validateGroupNS(ns); err != nil {
		return 0, err
	}
	if f.Epoch <= 0 || w.Version < 0 {
		return 0, fmt.Errorf("coord: write group %q: invalid epoch %d or version %d", group, f.Epoch, w.Version)
	}
	ops, err := c.groupOps(ns, group, w)
	if err != nil {
		return 0, err
	}
	token := newWriteToken()
	version = w.Version
	for i := 0; len(ops) > 0; i++ {
		lim := c.limits()
		n, size := groupTxnOps(ops, lim.ops-1, lim.bytes()) // each Txn also writes the version key
		last := n == len(ops)
		var refused bool
		version, refused, err = c.groupTxn(ctx, f, ns, group, w.Delete && last, ops[:n], version, fmt.Sprintf("%s/%d", token, i), w.Txn, lim, size)
		if refused {
			continue // nothing applied: split again, to the lowered limits, on the same version
		}
		if err != nil {
			return 0, err
		}
		ops = ops[n:]
	}
	return version, nil
}

// groupTxnOps is how many of ops, at least one, the next Txn of a group write takes, and their
// estimated size: at most limit, and no more than budget bytes of keys and values (txnBytes; a
// commit of many offsets with long metadata would otherwise exceed etcd's --max-request-bytes).
func groupTxnOps(ops []clientv3.Op, limit, budget int) (n, size int) {
	for i, op := range ops {
		bytes := len(op.KeyBytes()) + len(op.ValueBytes()) + txnOpBytes
		if i == limit || (i > 0 && size+bytes > budget) {
			return i, size
		}
		size += bytes
	}
	return len(ops), size
}

// newWriteToken names one WriteGroup call: what its Txns write to the version key.
func newWriteToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// groupTxn runs one Txn of a group write on version, in attempts (txnAttempts), and returns the
// version it wrote. A deletion's last Txn deletes the version key (version 0 after it); the others
// put token there. refused says that etcd refused the Txn for having more operations or bytes than
// it allows, before applying anything, and that the client lowered its limits (lim is what the Txn
// was packed to, size its estimated size): the caller splits the operations again and sends them.
func (c *Client) groupTxn(ctx context.Context, f GroupFence, ns, group string, deletion bool, ops []clientv3.Op, version int64, token string,
	guard *TxnGuard, lim txnLimits, size int) (_ int64, refused bool, _ error) {
	leader, verKey := c.keys.leader(f.Shard), c.keys.groupVersion(ns, group)
	if deletion {
		ops = append(slices.Clone(ops), clientv3.OpDelete(verKey))
	} else {
		ops = append(slices.Clone(ops), clientv3.OpPut(verKey, token))
	}
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(leader), "=", f.Epoch),
		clientv3.Compare(clientv3.ModRevision(verKey), "=", version)}
	reads := []clientv3.Op{clientv3.OpGet(leader), clientv3.OpGet(verKey)}
	if g := guard; g != nil {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(c.keys.txn(g.NS, g.ID)), "=", g.Version))
		reads = append(reads, clientv3.OpGet(c.keys.txn(g.NS, g.ID), clientv3.WithKeysOnly()))
	}
	resp, attempts, err := c.txnAttempts(ctx, txnGroupWrite, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return c.etcd.Txn(ctx).If(cmps...).Then(ops...).Else(reads...).Commit()
	})
	if err != nil {
		// Only a Txn refused at its first attempt is sent again, split: an attempt before the refusal
		// (timed out) may have applied on a member allowing more operations or bytes, and wrote a
		// token that the smaller Txns would not recognise. Then the outcome is unknown, as for any
		// error here; the limit is lowered all the same, for the writes after it.
		if c.fallBack(err, lim, size) && attempts == 1 {
			return 0, true, nil
		}
		if attempts > 1 {
			err = fmt.Errorf("%w (after %d attempts)", err, attempts)
		}
		return 0, false, fmt.Errorf("coord: write group %q: %w", group, err)
	}
	if resp.Succeeded {
		if deletion {
			return 0, false, nil
		}
		return resp.Header.Revision, false, nil
	}
	var current int64
	holder := ""
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		current, holder = kvs[0].CreateRevision, string(kvs[0].Value)
	}
	var now int64 // the version key's ModRevision now
	nowToken := ""
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		now, nowToken = kvs[0].ModRevision, string(kvs[0].Value)
	}
	// Only this write puts its token; and only the shard's coordinator at f.Epoch, writing the group
	// serially, would delete a version key it had read. Either way what an earlier attempt did is
	// there, whatever the leader key says now.
	if attempts > 1 && ((!deletion && nowToken == token) || (deletion && now == 0 && version != 0 && current == f.Epoch)) {
		c.log.Info("group write found applied by an earlier attempt whose answer was lost", "group", group, "shard", f.Shard, "epoch", f.Epoch)
		return now, false, nil
	}
	if current != f.Epoch {
		c.metrics.fenced.Inc()
		c.log.Warn("group write fenced", "group", group, "shard", f.Shard, "epoch", f.Epoch, "current", current, "holder", holder)
		return 0, false, fmt.Errorf("%w: group %q on shard %s epoch %d, leader key now epoch %d (holder %q)",
			ErrFenced, group, f.Shard, f.Epoch, current, holder)
	}
	if g := guard; g != nil && len(resp.Responses) > 2 {
		var at int64
		if kvs := resp.Responses[2].GetResponseRange().GetKvs(); len(kvs) > 0 {
			at = kvs[0].ModRevision
		}
		if at != g.Version {
			return 0, false, fmt.Errorf("%w: transactional id %q at version %d, not %d (group %q)", ErrTxnChanged, g.ID, at, g.Version, group)
		}
	}
	c.log.Warn("group write refused: the group changed since its state was read", "group", group, "shard", f.Shard, "version", version, "now", now)
	return 0, false, fmt.Errorf("%w: group %q at version %d, not %d", ErrGroupChanged, group, now, version)
}

// groupOps encodes a write: metadata first, then offset puts (the last of a partition wins, since
// etcd refuses a Txn that writes one key twice), then deletions.
func (c *Client) groupOps(ns, group string, w GroupWrite) ([]clientv3.Op, error) {
	if w.Delete {
		if w.Meta != nil || len(w.Offsets) > 0 || len(w.DeleteOffsets) > 0 || len(w.Pending) > 0 || len(w.DeletePending) > 0 {
			return nil, fmt.Errorf("coord: write group %q: a deletion cannot also write", group)
		}
		return []clientv3.Op{
			clientv3.OpDelete(c.keys.groupMeta(ns, group)),
			clientv3.OpDelete(c.keys.groupOffsets(ns, group), clientv3.WithPrefix()),
			clientv3.OpDelete(c.keys.groupPendings(ns, group), clientv3.WithPrefix()),
		}, nil
	}
	var ops []clientv3.Op
	if w.Meta != nil {
		val, err := json.Marshal(w.Meta)
		if err != nil {
			return nil, fmt.Errorf("coord: write group %q: encode metadata: %w", group, err)
		}
		ops = append(ops, clientv3.OpPut(c.keys.groupMeta(ns, group), string(val)))
	}
	at := map[TP]int{}
	for _, o := range w.Offsets {
		if o.Partition < 0 || o.Topic.IsZero() {
			return nil, fmt.Errorf("coord: write group %q: invalid partition %s", group, o.TP())
		}
		val, _ := json.Marshal(o) // numbers and strings: cannot fail
		op := clientv3.OpPut(c.keys.groupOffset(ns, group, o.TP()), string(val))
		if i, ok := at[o.TP()]; ok {
			ops[i] = op
			continue
		}
		at[o.TP()] = len(ops)
		ops = append(ops, op)
	}
	for _, tp := range w.DeleteOffsets {
		if _, ok := at[tp]; ok {
			return nil, fmt.Errorf("coord: write group %q: %s both written and deleted", group, tp)
		}
		at[tp] = len(ops)
		ops = append(ops, clientv3.OpDelete(c.keys.groupOffset(ns, group, tp)))
	}
	return c.pendingOps(ns, group, w, ops)
}
