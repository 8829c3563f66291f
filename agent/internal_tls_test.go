package agent

import (
	"crypto/tls"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/auth/authtest"
)

// Agents with mTLS on the internal listener forward sequencing to each other over it; a dialer that
// knows the cluster secret but shows no certificate, one of another CA, or plain TCP is refused
// before the secret's handshake.
func TestInternalListenerMTLS(t *testing.T) {
	t.Parallel()
	ca, other := authtest.NewCA(t, "agents"), authtest.NewCA(t, "other")
	withTLS := func(id, az string) func(*Config) {
		cert := ca.Server(t, id)
		return func(c *Config) {
			c.AZ = az
			c.Security.InternalTLSCertFile, c.Security.InternalTLSKeyFile = cert.CertFile, cert.KeyFile
			c.Security.InternalTLSCAFile = ca.CertFile
		}
	}
	tc := newTestCluster(t)
	a1 := tc.agent("a1", withTLS("a1", "z1"))
	a2 := tc.agent("a2", withTLS("a2", "z2"))
	createTopic(t, kgoClient(t, nil, a1, a2), "mtls", 2, nil)
	waitFor(t, "leadership balanced", func() bool { return leadsOf(a1, "mtls") == 1 && leadsOf(a2, "mtls") == 1 })

	cl := kgoClient(t, []kgo.Opt{kgo.ClientID("app;az=z2"), kgo.RecordPartitioner(kgo.ManualPartitioner())}, a2)
	var produced []*kgo.Record
	for i := range 100 {
		produced = append(produced, &kgo.Record{Topic: "mtls", Partition: int32(i % 2), Value: fmt.Appendf(nil, "v-%d", i)})
	}
	if err := cl.ProduceSync(testCtx(t), produced...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	consumed := consumeAll(t, []*Agent{a2}, "mtls", len(produced), kgo.ClientID("app;az=z2"), kgo.Rack("z2"),
		kgo.FetchMaxWait(100*time.Millisecond))
	checkDense(t, produced, consumed)
	if got := testutil.ToFloat64(a2.metrics.zones.crossZoneBytes.WithLabelValues("metadata")); got == 0 {
		t.Fatal("no sequencing crossed to the z1 leader: nothing was forwarded")
	}

	clientTLS := func(cert *authtest.Files, caFile string) *tls.Config {
		cfg := auth.ClientTLSConfig{CAFile: caFile}
		if cert != nil {
			cfg.CertFile, cfg.KeyFile = cert.CertFile, cert.KeyFile
		}
		c, err := auth.ClientTLS(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	good, foreign := ca.Server(t, "a3"), other.Server(t, "a3")
	if c, err := dialPeer(testCtx(t), a1.InternalAddr(), a1.secret, "a3", clientTLS(&good, ca.CertFile)); err != nil {
		t.Fatalf("an agent with a certificate of the CA: %v", err)
	} else {
		c.close()
	}
	for name, tc := range map[string]*tls.Config{
		"plain TCP":                nil,
		"no certificate":           clientTLS(nil, ca.CertFile),
		"another CA's certificate": clientTLS(&foreign, ca.CertFile),
	} {
		if c, err := dialPeer(testCtx(t), a1.InternalAddr(), a1.secret, "a3", tc); err == nil {
			c.close()
			t.Errorf("%s: the internal listener accepted it", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// An internal TLS configuration with a part missing stops Start.
func TestInternalTLSConfigIncomplete(t *testing.T) {
	t.Parallel()
	ca := authtest.NewCA(t, "agents")
	cert := ca.Server(t, "a1")
	for name, set := range map[string]func(*SecurityConfig){
		"certificate without CA": func(s *SecurityConfig) { s.InternalTLSCertFile, s.InternalTLSKeyFile = cert.CertFile, cert.KeyFile },
		"CA without certificate": func(s *SecurityConfig) { s.InternalTLSCAFile = ca.CertFile },
	} {
		a := &Agent{cfg: Config{}}
		set(&a.cfg.Security)
		if err := a.internalTLS(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
