package coord

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// quotaAlterAttempts bounds AlterQuota's compare-and-swap retries: each lost race means someone
// else changed the same entity at that moment, which administrators do not do for long.
const quotaAlterAttempts = 10

// PutACLs stores bindings; one that exists already is written again unchanged. The Txns are
// packed to the client's operation limit, so a large batch may land in parts.
func (c *Client) PutACLs(ctx context.Context, bindings []ACLBinding) error {
	defer c.metrics.observeQuery(ctx, opSecurity, time.Now())
	ops := make([]clientv3.Op, 0, len(bindings))
	for _, b := range bindings {
		v, err := json.Marshal(b)
		if err != nil {
			return err
		}
		ops = append(ops, clientv3.OpPut(c.keys.acl(b.ID()), string(v)))
	}
	_, err := c.txnChunks(ctx, ops)
	if err != nil {
		return fmt.Errorf("coord: put ACLs: %w", err)
	}
	return nil
}

// DeleteACLs deletes bindings and reports how many existed.
func (c *Client) DeleteACLs(ctx context.Context, bindings []ACLBinding) (int, error) {
	defer c.metrics.observeQuery(ctx, opSecurity, time.Now())
	ops := make([]clientv3.Op, 0, len(bindings))
	for _, b := range bindings {
		ops = append(ops, clientv3.OpDelete(c.keys.acl(b.ID())))
	}
	n, err := c.txnChunks(ctx, ops)
	if err != nil {
		return n, fmt.Errorf("coord: delete ACLs: %w", err)
	}
	return n, nil
}

// txnChunks sends ops in Txns of at most the client's operation limit and counts the keys the
// deletes among them removed.
func (c *Client) txnChunks(ctx context.Context, ops []clientv3.Op) (int, error) {
	deleted := 0
	for chunk := range slices.Chunk(ops, c.maxTxnOps()) {
		resp, err := c.etcd.Txn(ctx).Then(chunk...).Commit()
		if err != nil {
			return deleted, err
		}
		for _, r := range resp.Responses {
			if d := r.GetResponseDeleteRange(); d != nil {
				deleted += int(d.Deleted)
			}
		}
	}
	return deleted, nil
}

// ACLs reads every stored binding from etcd (tools; agents read their view).
func (c *Client) ACLs(ctx context.Context) ([]ACLBinding, error) {
	defer c.metrics.observeQuery(ctx, opSecurity, time.Now())
	resp, err := c.etcd.Get(ctx, c.keys.acls(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coord: read ACLs: %w", err)
	}
	var out []ACLBinding
	for _, kv := range resp.Kvs {
		var b ACLBinding
		if json.Unmarshal(kv.Value, &b) == nil {
			out = append(out, b)
		}
	}
	sortACLs(out)
	return out, nil
}

func sortACLs(bs []ACLBinding) {
	slices.SortFunc(bs, func(a, b ACLBinding) int {
		for _, p := range [][2]string{{a.ResourceType, b.ResourceType}, {a.PatternType, b.PatternType}, {a.Name, b.Name},
			{a.Principal, b.Principal}, {a.Host, b.Host}, {a.Operation, b.Operation}, {a.Permission, b.Permission}} {
			if c := strings.Compare(p[0], p[1]); c != 0 {
				return c
			}
		}
		return 0
	})
}

// AlterQuota sets and removes values of one entity's quota, as Kafka's AlterClientQuotas does; an
// entity left without values is deleted. The change is compared on the entity's mod revision, so
// that two tools altering different values of one entity at once both take effect.
func (c *Client) AlterQuota(ctx context.Context, e QuotaEntity, set map[string]float64, remove []string) error {
	defer c.metrics.observeQuery(ctx, opSecurity, time.Now())
	if !e.User.Set && !e.ClientID.Set {
		return fmt.Errorf("%w: a quota entity needs a user or a client id", ErrBadSecurityKey)
	}
	key := c.keys.quota(e)
	for range quotaAlterAttempts {
		resp, err := c.etcd.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("coord: alter quota of %s: %w", e, err)
		}
		values, rev := map[string]float64{}, int64(0)
		if len(resp.Kvs) > 0 {
			rev = resp.Kvs[0].ModRevision
			_ = json.Unmarshal(resp.Kvs[0].Value, &values) // an undecodable value is replaced
		}
		maps.Copy(values, set)
		for _, k := range remove {
			delete(values, k)
		}
		op := clientv3.OpDelete(key)
		if len(values) > 0 {
			v, _ := json.Marshal(values) // a map of floats always encodes
			op = clientv3.OpPut(key, string(v))
		}
		tresp, err := c.etcd.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(op).Commit()
		if err != nil {
			return fmt.Errorf("coord: alter quota of %s: %w", e, err)
		}
		if tresp.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("coord: alter quota of %s: changed by others %d times in a row", e, quotaAlterAttempts)
}

// Quotas reads every stored quota from etcd, sorted by key (tools; agents read their view).
func (c *Client) Quotas(ctx context.Context) ([]ClientQuota, error) {
	defer c.metrics.observeQuery(ctx, opSecurity, time.Now())
	resp, err := c.etcd.Get(ctx, c.keys.quotas(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("coord: read quotas: %w", err)
	}
	var out []ClientQuota
	for _, kv := range resp.Kvs {
		e, ok := parseQuotaKey(strings.TrimPrefix(string(kv.Key), c.keys.quotas()))
		var values map[string]float64
		if ok && json.Unmarshal(kv.Value, &values) == nil {
			out = append(out, ClientQuota{Entity: e, Values: values})
		}
	}
	return out, nil
}
