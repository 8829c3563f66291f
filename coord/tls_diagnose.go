package coord

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// tlsDiagnoseTimeout bounds tlsProblem: a handshake and the wait for the server's alert.
const tlsDiagnoseTimeout = 2 * time.Second

// tlsProblem names why an etcd endpoint reached over TLS does not answer, when TLS is why: gRPC only
// reports a deadline. It dials endpoint with tc and reads: an untrusted server fails the handshake,
// and a missing or refused client certificate comes back as the server's alert at the first read
// (TLS 1.3 sends it after the client's handshake is done). nil when TLS works, or the endpoint is
// http://.
func tlsProblem(ctx context.Context, endpoint string, tc *tls.Config) error {
	host := endpoint // without a scheme, TLS is used when configured, as clientv3 does
	if strings.Contains(endpoint, "://") {
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil
		}
		host = u.Host
	}
	name, _, err := net.SplitHostPort(host)
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, tlsDiagnoseTimeout)
	defer cancel()
	cfg := tc.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = name
	}
	conn, err := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", host)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil // nothing listens: not a TLS problem
		}
		return err
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(deadline)
	_, err = conn.Read(make([]byte, 1))
	if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil // the server waits for the client to speak: TLS is fine
	}
	return err
}
