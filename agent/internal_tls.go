package agent

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"

	"github.com/streamhouse/streamhouse/auth"
)

// mTLS between agents (docs/INTERNALS.md, "The internal listener"): with
// SecurityConfig.InternalTLSCAFile the internal listener serves TLS only to a client whose
// certificate that CA signed, and this agent dials other agents' internal listeners with its own
// certificate, checking theirs against the same CA and the host it dials. The cluster secret's
// handshake still runs inside TLS: it names the dialing agent. Certificates and the listener's CA
// are re-read when their files change, as the Kafka listeners' are.

// internalTLS makes the internal listener's and dialer's TLS configurations, when asked for.
func (a *Agent) internalTLS() error {
	sc := &a.cfg.Security
	if sc.InternalTLSCAFile == "" {
		if sc.InternalTLSCertFile != "" || sc.InternalTLSKeyFile != "" {
			return fmt.Errorf("agent: internal listener TLS: a certificate without a CA of the other agents' certificates")
		}
		return nil
	}
	if sc.InternalTLSCertFile == "" || sc.InternalTLSKeyFile == "" {
		return fmt.Errorf("agent: internal listener TLS: a CA without the agent's certificate and key")
	}
	var err error
	if a.sec.internalServer, err = auth.ServerTLS(auth.TLSConfig{
		CertFile: sc.InternalTLSCertFile, KeyFile: sc.InternalTLSKeyFile,
		ClientCAFile: sc.InternalTLSCAFile, ClientAuth: "required", Logger: a.log, Metrics: a.tlsMetrics,
	}); err != nil {
		return fmt.Errorf("agent: internal listener TLS: %w", err)
	}
	if a.sec.internalClient, err = auth.ClientTLS(auth.ClientTLSConfig{
		CAFile: sc.InternalTLSCAFile, CertFile: sc.InternalTLSCertFile, KeyFile: sc.InternalTLSKeyFile, Logger: a.log,
	}); err != nil {
		return fmt.Errorf("agent: internal listener TLS: %w", err)
	}
	return nil
}

// internalTLSClient runs the TLS handshake of a connection to another agent's internal listener
// at addr, within the deadline nc already has; it closes nc on error.
func internalTLSClient(ctx context.Context, nc net.Conn, addr string, tc *tls.Config) (net.Conn, error) {
	cfg := tc.Clone()
	if host, _, err := net.SplitHostPort(addr); err == nil && cfg.ServerName == "" {
		cfg.ServerName = host
	}
	c := tls.Client(nc, cfg)
	if err := c.HandshakeContext(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: TLS: %w", addr, err)
	}
	return c, nil
}
