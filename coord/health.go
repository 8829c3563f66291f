package coord

import (
	"context"
	"fmt"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Health is what etcd says of itself that an operator of StreamHouse watches: the size of its
// database against its quota, the keys under the prefix, and its alarms (NOSPACE: it refuses every
// write until space is freed and the alarm disarmed).
type Health struct {
	DBSize      int64    // bytes of the backend database file
	DBSizeInUse int64    // bytes of it in use (the rest is free pages a defragmentation would return)
	DBQuota     int64    // the member's --quota-backend-bytes: past it, NOSPACE (0: not reported)
	Keys        int64    // keys under the prefix
	Alarms      []string // raised alarms, by type ("NOSPACE", "CORRUPT"), one per member that raised it
}

// Health asks etcd for its health: one member's status (the first that answers), the cluster's
// alarms, and a count of the keys under the prefix.
func (c *Client) Health(ctx context.Context) (Health, error) {
	defer c.metrics.observeQuery(ctx, opHealth, time.Now())
	var h Health
	var status *clientv3.StatusResponse
	var err error
	for _, ep := range c.etcd.Endpoints() {
		if status, err = c.etcd.Status(ctx, ep); err == nil {
			break
		}
	}
	if err != nil {
		return h, fmt.Errorf("coord: etcd status: %w", err)
	}
	h.DBSize, h.DBSizeInUse, h.DBQuota = status.DbSize, status.DbSizeInUse, status.DbSizeQuota
	alarms, err := c.etcd.AlarmList(ctx)
	if err != nil {
		return h, fmt.Errorf("coord: etcd alarms: %w", err)
	}
	for _, a := range alarms.Alarms {
		if a.Alarm != pb.AlarmType_NONE {
			h.Alarms = append(h.Alarms, a.Alarm.String())
		}
	}
	keys, err := c.etcd.Get(ctx, c.keys.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return h, fmt.Errorf("coord: count keys: %w", err)
	}
	h.Keys = keys.Count
	return h, nil
}
