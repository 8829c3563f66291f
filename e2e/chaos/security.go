package main

import (
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
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/workload"
)

// The super user every client of a --security run logs in as.
const (
	securityUser = "chaos"
	securityPass = "chaos-secret"
)

// securitySetup is what --security runs the cluster with: every agent's one Kafka listener is
// SASL_SSL (TLS with a certificate of a CA made for the run, SCRAM-SHA-512), ACLs are on (a SASL
// listener turns them on) and the clients log in as a super user, as docs/DEPLOY.md sets a cluster
// up. It writes the CA and the agents' certificate into dir and sets workload.Security.
func securitySetup(dir string) (agentFlags []string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chaos-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "chaos-agent"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(30 * 24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
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
	files := map[string]*pem.Block{"ca.pem": {Type: "CERTIFICATE", Bytes: caDER},
		"agent.pem": {Type: "CERTIFICATE", Bytes: der}, "agent-key.pem": {Type: "PRIVATE KEY", Bytes: keyDER}}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	workload.Security = workload.SecurityConfig{TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		User: securityUser, Pass: securityPass}
	return []string{"--ssl-cert-file", filepath.Join(dir, "agent.pem"), "--ssl-key-file", filepath.Join(dir, "agent-key.pem"),
		"--sasl-enabled-mechanisms", "SCRAM-SHA-512", "--super-users", "User:" + securityUser,
		"--internal-ssl-ca-file", filepath.Join(dir, "ca.pem")}, nil
}

// securityNote is the summary's line about the run's security.
func securityNote(on bool) string {
	if !on {
		return "security: off (PLAINTEXT)"
	}
	return fmt.Sprintf("security: SASL_SSL listeners (SCRAM-SHA-512 as %s, a super user), ACLs on, internal listener over mTLS", securityUser)
}
