package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/agent"
	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// A secured cluster (shConfig.secure, target sh-1-sec) is sh-1 with one SASL_SSL listener, as
// docs/DEPLOY.md sets agents up: TLS with a certificate of a CA made for the run, SCRAM-SHA-512, ACLs
// on (no super user; the bench's user is granted what the workloads do). The bench's clients of that
// target connect over TLS, trusting the CA, and log in as that user.

const (
	secureUser      = "bench"
	securePassword  = "bench-secret"
	secureMechanism = "SCRAM-SHA-512"
)

// securePKI is the run's CA and the agents' certificate (for 127.0.0.1), as PEM files.
type securePKI struct {
	caFile, certFile, keyFile string
	pool                      *x509.CertPool
}

// newSecurePKI writes a CA and a server certificate for 127.0.0.1 signed by it into dir.
func newSecurePKI(dir string) (*securePKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "streamhouse-bench CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	p := &securePKI{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "agent.pem"),
		keyFile: filepath.Join(dir, "agent-key.pem"), pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	for _, f := range []struct {
		path, typ string
		der       []byte
	}{{p.caFile, "CERTIFICATE", caDER}, {p.certFile, "CERTIFICATE", der}, {p.keyFile, "PRIVATE KEY", keyDER}} {
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der}), 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// secureSetup makes the PKI, stores the bench user's SCRAM credential and its ACLs (what the workloads
// do: create, write, read and delete topics, idempotent producers, consumer groups), and makes the
// target's clients use TLS and SCRAM. It runs before the cluster's agents start.
func (c *shCluster) secureSetup(ctx context.Context) error {
	pki, err := newSecurePKI(filepath.Join(c.dir, "pki"))
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	c.pki = pki
	cl, err := coord.Connect(ctx, coord.Config{Endpoints: c.etcd.Endpoints()})
	if err != nil {
		return err
	}
	defer cl.Close()
	cred, err := auth.NewScramCredential(secureMechanism, securePassword, auth.DefaultScramIterations)
	if err != nil {
		return err
	}
	if err := cl.PutScramCredential(ctx, secureUser, secureMechanism, cred); err != nil {
		return err
	}
	pr, err := auth.ParsePrincipal("User:" + secureUser)
	if err != nil {
		return err
	}
	var bs []coord.ACLBinding
	for _, r := range []struct {
		typ  auth.ResourceType
		name string
	}{{auth.ResourceTopic, "*"}, {auth.ResourceGroup, "*"}, {auth.ResourceCluster, auth.ClusterName}} {
		bs = append(bs, auth.ACL{ResourceType: r.typ, PatternType: auth.PatternLiteral, Name: r.name, Principal: pr,
			Host: auth.WildcardHost, Operation: auth.OpAll, Permission: auth.PermissionAllow}.Binding())
	}
	if err := cl.PutACLs(ctx, bs); err != nil {
		return err
	}
	setClientOpts(c.cfg.name, kgo.DialTLSConfig(&tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(scram.Auth{User: secureUser, Pass: securePassword}.AsSha512Mechanism()))
	return nil
}

// secureAgent gives an agent's config the SASL_SSL listener (in place of the PLAINTEXT one on
// cfg.KafkaAddr) and its security.
func (c *shCluster) secureAgent(cfg *agent.Config) error {
	ls, err := agent.ParseListeners("SASL_SSL://"+cfg.KafkaAddr, "", "")
	if err != nil {
		return err
	}
	cfg.Listeners = ls
	s := &cfg.Security
	s.TLSCertFile, s.TLSKeyFile = c.pki.certFile, c.pki.keyFile
	s.SASLMechanisms = []string{secureMechanism}
	s.Authorization = true
	return nil
}

// clientOpts are the further options of each target's clients (TLS and SASL of a secured target).
var clientOpts struct {
	sync.RWMutex
	m map[string][]kgo.Opt
}

func setClientOpts(target string, opts ...kgo.Opt) {
	clientOpts.Lock()
	defer clientOpts.Unlock()
	if clientOpts.m == nil {
		clientOpts.m = map[string][]kgo.Opt{}
	}
	clientOpts.m[target] = opts
}

func targetClientOpts(target string) []kgo.Opt {
	clientOpts.RLock()
	defer clientOpts.RUnlock()
	return clientOpts.m[target]
}
