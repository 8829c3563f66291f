package auth

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/streamhouse/streamhouse/auth/authtest"
)

// handshake connects a TLS client to srv over loopback TCP and returns what each side saw. The
// server sends one byte after its handshake: in TLS 1.3 a client finishes its handshake before the
// server has checked its certificate, and learns of a refusal only when it reads.
func handshake(t *testing.T, srv, cli *tls.Config) (server, client tls.ConnectionState, err error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		cs  tls.ConnectionState
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, srv)
		err = s.Handshake()
		if err == nil {
			_, err = s.Write([]byte{1})
		}
		done <- result{s.ConnectionState(), err}
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	c := tls.Client(conn, cli)
	cerr := c.Handshake()
	if cerr == nil {
		_, cerr = c.Read(make([]byte, 1))
	}
	conn.Close()
	r := <-done
	return r.cs, c.ConnectionState(), errors.Join(r.err, cerr)
}

func clientConfig(t *testing.T, ca *authtest.CA, cert *authtest.Files) *tls.Config {
	t.Helper()
	cc := ClientTLSConfig{CAFile: ca.CertFile}
	if cert != nil {
		cc.CertFile, cc.KeyFile = cert.CertFile, cert.KeyFile
	}
	c, err := ClientTLS(cc)
	if err != nil {
		t.Fatal(err)
	}
	c.ServerName = "localhost"
	return c
}

func TestMutualTLSPrincipal(t *testing.T) {
	t.Parallel()
	ca, other := authtest.NewCA(t, "ca"), authtest.NewCA(t, "other")
	srvCert := ca.Server(t, "agent")
	alice := ca.Client(t, pkix.Name{Country: []string{"US"}, Organization: []string{"Example"}, OrganizationalUnit: []string{"eng"}, CommonName: "alice"})
	mallory := other.Client(t, pkix.Name{CommonName: "alice"})
	srv, err := ServerTLS(TLSConfig{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile, ClientCAFile: ca.CertFile})
	if err != nil {
		t.Fatal(err)
	}
	ss, _, err := handshake(t, srv, clientConfig(t, ca, &alice))
	if err != nil {
		t.Fatal(err)
	}
	p, err := TLSPrincipal(ss, nil)
	if err != nil || p.String() != "User:CN=alice,OU=eng,O=Example,C=US" {
		t.Fatalf("principal %q, %v", p, err)
	}
	if _, _, err := handshake(t, srv, clientConfig(t, ca, &mallory)); err == nil {
		t.Fatal("a certificate of another CA was accepted")
	}
	if _, _, err := handshake(t, srv, clientConfig(t, ca, nil)); err == nil {
		t.Fatal("no client certificate was accepted with client auth required")
	}
	req, err := ServerTLS(TLSConfig{CertFile: srvCert.CertFile, KeyFile: srvCert.KeyFile, ClientCAFile: ca.CertFile, ClientAuth: ClientAuthRequested})
	if err != nil {
		t.Fatal(err)
	}
	ss, _, err = handshake(t, req, clientConfig(t, ca, nil))
	if p, _ := TLSPrincipal(ss, nil); err != nil || p != Anonymous {
		t.Fatalf("requested, no certificate: %v %v", p, err)
	}
	if _, _, err := handshake(t, srv, &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost"}); err == nil {
		t.Fatal("a client not trusting the server's CA completed the handshake")
	}
}

// A renewed certificate is served once its files change, without a new tls.Config; a pair that
// does not match (the key not written yet) keeps the old one.
func TestServerTLSReloadsCertificate(t *testing.T) {
	t.Parallel()
	ca := authtest.NewCA(t, "ca")
	first, second := ca.Server(t, "first"), ca.Server(t, "second")
	dir := t.TempDir()
	certFile, keyFile := dir+"/cert.pem", dir+"/key.pem"
	stamp := time.Now()
	install := func(cert, key string) {
		stamp = stamp.Add(time.Minute)
		for _, c := range [][2]string{{cert, certFile}, {key, keyFile}} {
			b, err := os.ReadFile(c[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c[1], b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(c[1], stamp, stamp); err != nil {
				t.Fatal(err)
			}
		}
	}
	install(first.CertFile, first.KeyFile)
	clock := time.Unix(1000, 0)
	m := NewTLSMetrics(nil)
	srv, err := ServerTLS(TLSConfig{CertFile: certFile, KeyFile: keyFile, Now: func() time.Time { return clock }, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		t.Helper()
		_, cs, err := handshake(t, srv, clientConfig(t, ca, nil))
		if err != nil {
			t.Fatal(err)
		}
		return cs.PeerCertificates[0].Subject.CommonName
	}
	install(second.CertFile, first.KeyFile) // half-way: the new certificate, the old key
	clock = clock.Add(2 * time.Second)
	if got := served(); got != "first" || testutil.ToFloat64(m.failed) != 1 {
		t.Fatalf("half-written pair: served %q, %v failed reloads", got, testutil.ToFloat64(m.failed))
	}
	install(second.CertFile, second.KeyFile)
	if got := served(); got != "first" {
		t.Fatalf("re-read within a second: %q", got)
	}
	clock = clock.Add(2 * time.Second)
	if got := served(); got != "second" || testutil.ToFloat64(m.ok) != 1 {
		t.Fatalf("after renewal: served %q, %v reloads", got, testutil.ToFloat64(m.ok))
	}
}

func TestDistinguishedNameAsKafka(t *testing.T) {
	t.Parallel()
	rdn := func(oid asn1.ObjectIdentifier, v any) pkix.RelativeDistinguishedNameSET {
		return pkix.RelativeDistinguishedNameSET{{Type: oid, Value: v}}
	}
	cn, ou, dc := asn1.ObjectIdentifier{2, 5, 4, 3}, asn1.ObjectIdentifier{2, 5, 4, 11}, asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
	for _, tc := range []struct {
		seq  pkix.RDNSequence
		want string
	}{
		{pkix.RDNSequence{rdn(dc, "com"), rdn(dc, "example"), rdn(ou, "eng"), rdn(cn, "alice")}, "CN=alice,OU=eng,DC=example,DC=com"},
		{pkix.RDNSequence{rdn(cn, `a,b+c"d\e<f>g;h`)}, `CN=a\,b\+c\"d\\e\<f\>g\;h`},
		{pkix.RDNSequence{rdn(cn, " #lead trail ")}, `CN=\ #lead trail\ `},
		{pkix.RDNSequence{rdn(cn, "#x")}, `CN=\#x`},
		{pkix.RDNSequence{{{Type: cn, Value: "a"}, {Type: ou, Value: "b"}}}, "CN=a+OU=b"},
		{pkix.RDNSequence{rdn(asn1.ObjectIdentifier{2, 5, 4, 5}, "1")}, "2.5.4.5=#130131"},
		{pkix.RDNSequence{rdn(cn, "ü")}, "CN=ü"},
	} {
		der, err := asn1.Marshal(tc.seq)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := DistinguishedName(der); err != nil || got != tc.want {
			t.Errorf("got %q, %v; want %q", got, err, tc.want)
		}
	}
	if _, err := DistinguishedName([]byte{0x30, 0x03}); err == nil {
		t.Fatal("a truncated subject parsed")
	}
}

func TestPrincipalMappingRules(t *testing.T) {
	t.Parallel()
	rules, err := ParsePrincipalRules(`RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=(.*?),OU=(.*?),O=.*$/$1@$2/L, RULE:^cn=(.*?),.*$/$1/U,DEFAULT`)
	if err != nil {
		t.Fatal(err)
	}
	for dn, want := range map[string]string{
		"CN=kafka-svc,OU=ServiceUsers,O=Example": "kafka-svc",
		"CN=Alice,OU=ENG,O=Example":              "alice@eng",
		"cn=bob,x=y":                             "BOB",
		"C=US":                                   "C=US",
	} {
		if got, err := rules.Map(dn); err != nil || got != want {
			t.Errorf("%q: %q, %v; want %q", dn, got, err, want)
		}
	}
	strict, err := ParsePrincipalRules(`RULE:^CN=([^,]*)$/$1/`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Map("CN=a,O=b"); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("no rule applying: %v", err)
	}
	for _, bad := range []string{"RULE:(/x/", "RULE:a/b", "NOPE"} {
		if _, err := ParsePrincipalRules(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestTLSConfigErrors(t *testing.T) {
	t.Parallel()
	ca := authtest.NewCA(t, "ca")
	c := ca.Server(t, "s")
	for _, cfg := range []TLSConfig{
		{CertFile: c.CertFile},
		{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientAuth: ClientAuthRequired},
		{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: ca.CertFile, ClientAuth: "sometimes"},
		{CertFile: c.CertFile, KeyFile: ca.CertFile},
		{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: c.KeyFile},
	} {
		if _, err := ServerTLS(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	if _, err := ClientTLS(ClientTLSConfig{CertFile: c.CertFile}); err == nil {
		t.Error("a client certificate without a key accepted")
	}
}

// FuzzDistinguishedName: a client certificate's subject, however encoded, gives a name or an error.
func FuzzDistinguishedName(f *testing.F) {
	der, _ := asn1.Marshal(pkix.RDNSequence{{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: "alice"}}})
	f.Add(der)
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, raw []byte) {
		if _, err := DistinguishedName(raw); err != nil && !strings.HasPrefix(err.Error(), "auth: ") {
			t.Fatalf("%x: %v", raw, err)
		}
	})
}
