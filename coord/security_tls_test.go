package coord_test

import (
	"context"
	"crypto/tls"
	"crypto/x509/pkix"
	"strings"
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/auth/authtest"
	"github.com/streamhouse/streamhouse/coord"
)

// An etcd serving TLS with client certificate authentication, and RBAC on: a client needs the CA,
// a certificate the CA signed and a user with its password.
func TestConnectTLSAndEtcdAuth(t *testing.T) {
	t.Parallel()
	ca, other := authtest.NewCA(t, "etcd-ca"), authtest.NewCA(t, "other")
	srv := ca.Server(t, "etcd")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := coord.StartEmbedded(ctx, coord.EmbedConfig{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0",
		UnsafeNoFsync: true, ClientTLS: &coord.EmbedTLS{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.CertFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	good := ca.Client(t, pkix.Name{CommonName: "agent"})
	bad := other.Client(t, pkix.Name{CommonName: "agent"})
	tlsFor := func(certs *authtest.Files) *tls.Config {
		cfg := auth.ClientTLSConfig{CAFile: ca.CertFile}
		if certs != nil {
			cfg.CertFile, cfg.KeyFile = certs.CertFile, certs.KeyFile
		}
		c, err := auth.ClientTLS(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	connect := func(tc *tls.Config, user, pass string) (*coord.Client, error) {
		return coord.Connect(ctx, coord.Config{Endpoints: e.Endpoints(), DialTimeout: time.Second, TLS: tc, Username: user, Password: pass})
	}
	root, err := connect(tlsFor(&good), "", "")
	if err != nil {
		t.Fatalf("a client with a good certificate: %v", err)
	}
	defer root.Close()
	// The error names the TLS problem, not only gRPC's deadline.
	for name, tc := range map[string]struct {
		tls  *tls.Config
		want string
	}{
		"no certificate":           {tlsFor(nil), "certificate required"},
		"another CA's certificate": {tlsFor(&bad), "tls: "},
		"plaintext":                {nil, ""},
	} {
		c, err := connect(tc.tls, "", "")
		if err == nil {
			c.Close()
			t.Errorf("%s: connected", name)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want it to say %q", name, err, tc.want)
		}
		t.Logf("%s: %v", name, err)
	}
	// Turn etcd's RBAC on: a root user that may do everything.
	ec := root.Etcd()
	for _, step := range []func() error{
		func() error { _, err := ec.UserAdd(ctx, "root", "rootpw"); return err },
		func() error { _, err := ec.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := ec.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	if c, err := connect(tlsFor(&good), "root", "wrong"); err == nil {
		c.Close()
		t.Error("a wrong etcd password connected")
	}
	c, err := connect(tlsFor(&good), "root", "rootpw")
	if err != nil {
		t.Fatalf("root with its password: %v", err)
	}
	defer c.Close()
	if err := c.PutScramCredential(ctx, "alice", coord.ScramSHA256, coord.ScramCredential{Iterations: 4096}); err != nil {
		t.Fatalf("write as root: %v", err)
	}
	if _, err := coord.Connect(ctx, coord.Config{Endpoints: e.Endpoints(), Username: "root"}); err == nil {
		t.Fatal("a user without a password was accepted")
	}
}
