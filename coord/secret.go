package coord

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// SecretLen is the length of the cluster secret in bytes.
const SecretLen = 32

// ClusterSecret returns the cluster secret: the key agents prove to each other on their internal
// listeners. The first caller creates it (a Txn that writes it only if it does not exist, so that
// agents starting together agree on one); it never changes after. Whoever can read the prefix can
// read it: etcd is the cluster's root of trust already.
func (c *Client) ClusterSecret(ctx context.Context) ([]byte, error) {
	defer c.metrics.observeQuery(ctx, opClusterSecret, time.Now())
	key := c.keys.secret()
	fresh := make([]byte, SecretLen)
	_, _ = rand.Read(fresh) // crypto/rand.Read never fails (Go ≥ 1.24)
	resp, err := c.etcd.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, hex.EncodeToString(fresh))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, fmt.Errorf("coord: cluster secret: %w", err)
	}
	if resp.Succeeded {
		c.log.Info("cluster secret created", "key", key)
		return fresh, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, fmt.Errorf("coord: cluster secret: %s vanished", key)
	}
	secret, err := hex.DecodeString(string(kvs[0].Value))
	if err != nil || len(secret) != SecretLen {
		return nil, fmt.Errorf("coord: cluster secret: %s is not %d hex-encoded bytes", key, SecretLen)
	}
	return secret, nil
}
