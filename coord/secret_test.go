package coord

import (
	"bytes"
	"sync"
	"testing"
)

// Agents starting together agree on one secret, created once; it survives as it is.
func TestClusterSecretCreatedOnce(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	const n = 4
	secrets := make([][]byte, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := te.client(t)
		wg.Go(func() { secrets[i], errs[i] = c.ClusterSecret(testCtx(t)) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if len(secrets[i]) != SecretLen || !bytes.Equal(secrets[i], secrets[0]) {
			t.Fatalf("client %d got secret %x, client 0 %x", i, secrets[i], secrets[0])
		}
	}
	if bytes.Equal(secrets[0], make([]byte, SecretLen)) {
		t.Fatal("the secret is all zeros")
	}
	again, err := te.client(t).ClusterSecret(testCtx(t))
	if err != nil || !bytes.Equal(again, secrets[0]) {
		t.Fatalf("read again: %x, %v; want %x", again, err, secrets[0])
	}
}

// A secret that is not what an agent wrote is an error, not a weaker key.
func TestClusterSecretMalformed(t *testing.T) {
	t.Parallel()
	te := newTestEtcd(t)
	c := te.client(t)
	if _, err := c.Etcd().Put(testCtx(t), c.keys.secret(), "abcd"); err != nil {
		t.Fatal(err)
	}
	if s, err := c.ClusterSecret(testCtx(t)); err == nil {
		t.Fatalf("a 2-byte secret was accepted: %x", s)
	}
}
