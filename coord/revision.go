package coord

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Revision is etcd's current revision, read linearizably: a Cache that has reached it (WaitRevision)
// reflects every write acknowledged before the call, whatever this process was told of them.
func (c *Client) Revision(ctx context.Context) (int64, error) {
	defer c.metrics.observeQuery(ctx, opRevision, time.Now())
	resp, err := c.etcd.Get(ctx, c.keys.prefix, clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("coord: read the current revision: %w", err)
	}
	return resp.Header.Revision, nil
}
