package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Transactions. A transaction coordinator keeps the transactional ids of the shards it leads in
// memory and persists each one's state here, one key per id, at every transition a client depends
// on (docs/INTERNALS.md, "Transactions"). The shards are those of the consumer groups: partitions of
// the agent group's offsets topic, whose leader keys fence every write, so a coordinator that lost
// its shard gets ErrFenced and changes nothing.
//
// Keys, per agent group ns:
//
//	txns/<ns>/<transactional id, path-escaped>    JSON TxnMeta (with the token of its last write)
//
// The key is its own version: its ModRevision (0 when absent) changes with every write, and each
// write compares it with the version the writer's state was read or last written at. A write based on
// a state that is no longer etcd's fails (ErrTxnChanged) instead of overwriting a newer one; a write
// sent again after a timeout recognises its own token, so sending it again is safe.

// Transaction states, Kafka's names.
const (
	TxnEmpty          = "Empty"
	TxnOngoing        = "Ongoing"
	TxnPrepareCommit  = "PrepareCommit"
	TxnPrepareAbort   = "PrepareAbort"
	TxnCompleteCommit = "CompleteCommit"
	TxnCompleteAbort  = "CompleteAbort"
)

// ErrTxnChanged: a transaction write was based on a version of the transactional id's state that is
// no longer etcd's; the coordinator must reload it. Nothing was written.
var ErrTxnChanged = errors.New("coord: transaction state changed since it was read")

// ErrTxnTooLarge: a transaction's state is larger than one Txn may carry (too many partitions).
// Nothing was written.
var ErrTxnTooLarge = errors.New("coord: transaction state too large")

// TxnMeta is the state of one transactional id: the value of txns/<ns>/<id>.
type TxnMeta struct {
	ProducerID int64
	Epoch      int16
	// PrevProducerID and PrevEpoch are the producer id and epoch before the last InitProducerID
	// (-1 when none): a client retrying that call names them (KIP-360).
	PrevProducerID int64
	PrevEpoch      int16
	TimeoutMs      int32
	State          string // Txn*
	// Partitions and Groups are in the ongoing or last transaction: what its markers go to.
	Partitions []TP
	Groups     []string
	StartMs    int64 // when the ongoing or last transaction started (unix ms; 0: none yet)
	UpdateMs   int64 // when the state last changed (unix ms)
}

// TxnSnapshot is one transactional id as stored.
type TxnSnapshot struct {
	ID      string
	Meta    TxnMeta
	Version int64 // the key's ModRevision: what the next write must name
}

// txnValue is TxnMeta as stored: partitions grouped by topic id, and the token of the write.
type txnValue struct {
	ProducerID     int64               `json:"pid"`
	Epoch          int16               `json:"epoch"`
	PrevProducerID int64               `json:"prevPid"`
	PrevEpoch      int16               `json:"prevEpoch"`
	TimeoutMs      int32               `json:"timeoutMs"`
	State          string              `json:"state"`
	Partitions     map[TopicID][]int32 `json:"parts,omitempty"`
	Groups         []string            `json:"groups,omitempty"`
	StartMs        int64               `json:"startMs,omitempty"`
	UpdateMs       int64               `json:"updateMs"`
	Token          string              `json:"w"`
}

func encodeTxn(m *TxnMeta, token string) ([]byte, error) {
	v := txnValue{ProducerID: m.ProducerID, Epoch: m.Epoch, PrevProducerID: m.PrevProducerID, PrevEpoch: m.PrevEpoch,
		TimeoutMs: m.TimeoutMs, State: m.State, Groups: m.Groups, StartMs: m.StartMs, UpdateMs: m.UpdateMs, Token: token}
	if !validTxnState(m.State) {
		return nil, fmt.Errorf("coord: transaction state %q is not one of Kafka's", m.State)
	}
	for _, tp := range m.Partitions {
		if tp.Topic.IsZero() || tp.Partition < 0 {
			return nil, fmt.Errorf("coord: transaction partition %s is invalid", tp)
		}
		if v.Partitions == nil {
			v.Partitions = map[TopicID][]int32{}
		}
		v.Partitions[tp.Topic] = append(v.Partitions[tp.Topic], tp.Partition)
	}
	return json.Marshal(v)
}

// decodeTxn reads a stored value; the partitions come out sorted, each once.
func decodeTxn(b []byte) (TxnMeta, string, error) {
	var v txnValue
	if err := json.Unmarshal(b, &v); err != nil {
		return TxnMeta{}, "", err
	}
	if !validTxnState(v.State) {
		return TxnMeta{}, "", fmt.Errorf("state %q is not one of Kafka's", v.State)
	}
	m := TxnMeta{ProducerID: v.ProducerID, Epoch: v.Epoch, PrevProducerID: v.PrevProducerID, PrevEpoch: v.PrevEpoch,
		TimeoutMs: v.TimeoutMs, State: v.State, Groups: v.Groups, StartMs: v.StartMs, UpdateMs: v.UpdateMs}
	if len(m.Groups) == 0 {
		m.Groups = nil // as encoded: omitted
	}
	for id, ps := range v.Partitions {
		for _, p := range ps {
			if id.IsZero() || p < 0 {
				return TxnMeta{}, "", fmt.Errorf("partition %s/%d is invalid", id, p)
			}
			m.Partitions = append(m.Partitions, TP{Topic: id, Partition: p})
		}
	}
	slices.SortFunc(m.Partitions, cmpTP)
	m.Partitions = slices.Compact(m.Partitions)
	return m, v.Token, nil
}

func cmpTP(a, b TP) int {
	if c := strings.Compare(string(a.Topic[:]), string(b.Topic[:])); c != 0 {
		return c
	}
	return int(a.Partition) - int(b.Partition)
}

func validTxnState(s string) bool {
	switch s {
	case TxnEmpty, TxnOngoing, TxnPrepareCommit, TxnPrepareAbort, TxnCompleteCommit, TxnCompleteAbort:
		return true
	}
	return false
}

const dirTxns = "txns/"

func (k keys) txns(ns string) string { return k.prefix + dirTxns + ns + "/" }

// txn escapes the id so that any transactional id ('/' included) is one path segment.
func (k keys) txn(ns, id string) string { return k.txns(ns) + url.PathEscape(id) }

// Query operations of the transaction store, labelled in
// streamhouse_metadata_store_query_duration_seconds.
const (
	opLoadTxns = "load_txns"
	opLoadTxn  = "load_txn"
	opWriteTxn = "write_txn"
)

// txnTxnWrite names transaction writes in txnAttempts' logs.
const txnTxnWrite = "transaction write"

// LoadTxns reads, at one revision, the state of every transactional id of namespace ns that keep
// accepts. A coordinator calls it once it leads a shard, with keep selecting the shard's ids; the read
// is linearizable, so it sees every write of the shard's previous coordinators.
func (c *Client) LoadTxns(ctx context.Context, ns string, keep func(id string) bool) ([]TxnSnapshot, error) {
	defer c.metrics.observeQuery(ctx, opLoadTxns, time.Now())
	if err := validateGroupNS(ns); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		kvs, _, err := c.rangeAll(ctx, c.keys.txns(ns), 0)
		if errors.Is(err, rpctypes.ErrCompacted) && attempt < 3 {
			continue // the revision of the first page was compacted before the last: read afresh
		}
		if err != nil {
			return nil, fmt.Errorf("coord: load transactions of %q: %w", ns, err)
		}
		var out []TxnSnapshot
		for _, kv := range kvs {
			s, ok, err := c.txnSnapshot(ns, kv)
			if err != nil {
				return nil, err
			}
			if ok && keep(s.ID) {
				out = append(out, s)
			}
		}
		return out, nil
	}
}

// txnSnapshot decodes one txns/ key; ok is false for a key whose name does not unescape (not ours).
func (c *Client) txnSnapshot(ns string, kv *mvccpb.KeyValue) (TxnSnapshot, bool, error) {
	id, err := url.PathUnescape(strings.TrimPrefix(string(kv.Key), c.keys.txns(ns)))
	if err != nil {
		return TxnSnapshot{}, false, nil
	}
	m, _, err := decodeTxn(kv.Value)
	if err != nil {
		return TxnSnapshot{}, false, fmt.Errorf("coord: decode %s: %w", kv.Key, err)
	}
	return TxnSnapshot{ID: id, Meta: m, Version: kv.ModRevision}, true, nil
}

// LoadTxn reads one transactional id's state (linearizable); ok is false when it has none.
func (c *Client) LoadTxn(ctx context.Context, ns, id string) (_ TxnSnapshot, ok bool, _ error) {
	defer c.metrics.observeQuery(ctx, opLoadTxn, time.Now())
	if err := validateGroupNS(ns); err != nil {
		return TxnSnapshot{}, false, err
	}
	resp, err := c.etcd.Get(ctx, c.keys.txn(ns, id))
	if err != nil {
		return TxnSnapshot{}, false, fmt.Errorf("coord: load transaction %q: %w", id, err)
	}
	if len(resp.Kvs) == 0 {
		return TxnSnapshot{}, false, nil
	}
	m, _, err := decodeTxn(resp.Kvs[0].Value)
	if err != nil {
		return TxnSnapshot{}, false, fmt.Errorf("coord: decode transaction %q: %w", id, err)
	}
	return TxnSnapshot{ID: id, Meta: m, Version: resp.Kvs[0].ModRevision}, true, nil
}

// WriteTxn puts meta as the state of transactional id id (nil: deletes it), in one Txn guarded by
// Compare(CreateRevision(leaders/<shard>) == f.Epoch) and Compare(ModRevision(txns/<ns>/<id>) ==
// version), and returns the state's new version (0 after a deletion). version is what the caller's
// state was read at (TxnSnapshot.Version) or last written at, 0 for an id never written.
//
// It returns ErrFenced when the shard's leader key is no longer the one created at f.Epoch,
// ErrTxnChanged when the state is no longer at version, ErrTxnTooLarge when meta is more than one
// Txn may carry. A Txn whose attempt times out or finds etcd unavailable is sent again, within
// Config.CommitTimeout: each write puts a token of its own in the value, so an attempt that finds its
// token there knows an earlier one applied (a deletion: finds the key gone while the shard is still
// the caller's, which only the caller, writing the id serially, would do). Any other error leaves the
// outcome unknown: the coordinator must reload the id before going on.
func (c *Client) WriteTxn(ctx context.Context, f GroupFence, ns, id string, meta *TxnMeta, version int64) (int64, error) {
	defer c.metrics.observeQuery(ctx, opWriteTxn, time.Now())
	if err := validateGroupNS(ns); err != nil {
		return 0, err
	}
	if f.Epoch <= 0 || version < 0 {
		return 0, fmt.Errorf("coord: write transaction %q: invalid epoch %d or version %d", id, f.Epoch, version)
	}
	key, leader := c.keys.txn(ns, id), c.keys.leader(f.Shard)
	token := newWriteToken()
	op := clientv3.OpDelete(key)
	if meta != nil {
		val, err := encodeTxn(meta, token)
		if err != nil {
			return 0, fmt.Errorf("coord: write transaction %q: %w", id, err)
		}
		lim := c.limits()
		if size := len(key) + len(val) + 3*txnOpBytes; size > lim.bytes() {
			return 0, fmt.Errorf("%w: %q is %d bytes, a Txn may carry %d", ErrTxnTooLarge, id, size, lim.bytes())
		}
		op = clientv3.OpPut(key, string(val))
	}
	resp, attempts, err := c.txnAttempts(ctx, txnTxnWrite, func(ctx context.Context) (*clientv3.TxnResponse, error) {
		return c.etcd.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(leader), "=", f.Epoch),
				clientv3.Compare(clientv3.ModRevision(key), "=", version)).
			Then(op).
			Else(clientv3.OpGet(leader), clientv3.OpGet(key)).
			Commit()
	})
	if err != nil {
		if attempts > 1 {
			err = fmt.Errorf("%w (after %d attempts)", err, attempts)
		}
		return 0, fmt.Errorf("coord: write transaction %q: %w", id, err)
	}
	if resp.Succeeded {
		if meta == nil {
			return 0, nil
		}
		return resp.Header.Revision, nil
	}
	return c.txnWriteFailed(f, id, meta == nil, version, token, attempts, resp)
}

// txnWriteFailed reads why a transaction write's compares failed from its Else branch: an earlier
// attempt applied (its version returned), the shard was fenced, or the state changed.
func (c *Client) txnWriteFailed(f GroupFence, id string, deletion bool, version int64, token string, attempts int,
	resp *clientv3.TxnResponse) (int64, error) {
	var current int64
	holder := ""
	if kvs := resp.Responses[0].GetResponseRange().GetKvs(); len(kvs) > 0 {
		current, holder = kvs[0].CreateRevision, string(kvs[0].Value)
	}
	var now int64
	nowToken := ""
	if kvs := resp.Responses[1].GetResponseRange().GetKvs(); len(kvs) > 0 {
		now = kvs[0].ModRevision
		if _, tok, err := decodeTxn(kvs[0].Value); err == nil {
			nowToken = tok
		}
	}
	if attempts > 1 && ((!deletion && nowToken == token) || (deletion && now == 0 && version != 0 && current == f.Epoch)) {
		c.log.Info("transaction write found applied by an earlier attempt whose answer was lost", "transactional_id", id, "shard", f.Shard, "epoch", f.Epoch)
		return now, nil
	}
	if current != f.Epoch {
		c.metrics.fenced.Inc()
		c.log.Warn("transaction write fenced", "transactional_id", id, "shard", f.Shard, "epoch", f.Epoch, "current", current, "holder", holder)
		return 0, fmt.Errorf("%w: transactional id %q on shard %s epoch %d, leader key now epoch %d (holder %q)",
			ErrFenced, id, f.Shard, f.Epoch, current, holder)
	}
	c.log.Warn("transaction write refused: the state changed since it was read", "transactional_id", id, "shard", f.Shard, "version", version, "now", now)
	return 0, fmt.Errorf("%w: transactional id %q at version %d, not %d", ErrTxnChanged, id, now, version)
}
