package coord

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Evict revokes the session lease of agent id, if it is registered: its registration and every leader
// key it holds go at once. It is for an owner who knows the agent is gone — dev mode, which runs its
// own etcd, evicts the in-process agents of a previous run that was killed, whose leases would
// otherwise outlive them (the restarted etcd renews nothing, but a lease's TTL restarts with etcd).
func (c *Client) Evict(ctx context.Context, id string) error {
	resp, err := c.etcd.Get(ctx, c.keys.agent(id))
	if err != nil {
		return fmt.Errorf("coord: evict %s: %w", id, err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].Lease == 0 {
		return nil
	}
	lease := clientv3.LeaseID(resp.Kvs[0].Lease)
	if _, err := c.etcd.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("coord: evict %s: revoke lease %x: %w", id, lease, err)
	}
	c.log.Info("evicted agent", "agent", id, "lease", fmt.Sprintf("%x", lease))
	return nil
}
