package main

import (
	"crypto/tls"
	"fmt"

	"github.com/streamhouse/streamhouse/e2e/chaos/workload"
	"github.com/streamhouse/streamhouse/e2e/localpki"
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
	pki, err := localpki.Write(dir, "chaos")
	if err != nil {
		return nil, err
	}
	workload.Security = workload.SecurityConfig{TLS: &tls.Config{RootCAs: pki.Pool, MinVersion: tls.VersionTLS12},
		User: securityUser, Pass: securityPass}
	return []string{"--ssl-cert-file", pki.Cert, "--ssl-key-file", pki.Key,
		"--sasl-enabled-mechanisms", "SCRAM-SHA-512", "--super-users", "User:" + securityUser,
		"--internal-ssl-ca-file", pki.CA}, nil
}

// securityNote is the summary's line about the run's security.
func securityNote(on bool) string {
	if !on {
		return "security: off (PLAINTEXT)"
	}
	return fmt.Sprintf("security: SASL_SSL listeners (SCRAM-SHA-512 as %s, a super user), ACLs on, internal listener over mTLS", securityUser)
}
