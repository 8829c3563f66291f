package localpki

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
)

// The written certificate and key make a TLS certificate that the pool's CA verifies for 127.0.0.1,
// as a server's and as a client's.
func TestWrite(t *testing.T) {
	t.Parallel()
	f, err := Write(t.TempDir(), "test")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: f.Pool, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Fatalf("usage %v: %v", usage, err)
		}
	}
}
