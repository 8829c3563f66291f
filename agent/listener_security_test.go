package agent

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/auth/authtest"
)

// secFixture is a CA with a server certificate, and an OAuth signing key, for secured agents.
type secFixture struct {
	ca       *authtest.CA
	server   authtest.Files
	oauthKey *ecdsa.PrivateKey
	keyFile  string
}

func newSecFixture(t testing.TB) *secFixture {
	t.Helper()
	ca := authtest.NewCA(t, "kafka")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "oauth.pem")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &secFixture{ca: ca, server: ca.Server(t, "agent"), oauthKey: key, keyFile: keyFile}
}

// listeners gives the agent one listener per protocol, named as the protocol, with TLS from the
// fixture, every mechanism, OAuth keys, and the super users given.
func (f *secFixture) listeners(supers []string, protos ...string) func(*Config) {
	return func(c *Config) {
		for _, p := range protos {
			c.Listeners = append(c.Listeners, ListenerConfig{Name: p, Protocol: p, Addr: "127.0.0.1:0"})
		}
		c.Security.TLSCertFile, c.Security.TLSKeyFile = f.server.CertFile, f.server.KeyFile
		c.Security.SASLMechanisms = auth.AllMechanisms
		c.Security.OAuth.KeyFiles = []string{f.keyFile}
		for _, s := range supers {
			c.Security.SuperUsers = append(c.Security.SuperUsers, auth.User(s))
		}
	}
}

// clientTLS trusts the fixture's CA.
func (f *secFixture) clientTLS(t testing.TB) *tls.Config {
	t.Helper()
	pemBytes, err := os.ReadFile(f.ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	return &tls.Config{RootCAs: pool, ServerName: "localhost"}
}

// token is a signed JWT for sub expiring at exp.
func (f *secFixture) token(t testing.TB, sub string, exp time.Time) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{"sub": sub, "exp": exp.Unix()}).SignedString(f.oauthKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// listenerAddr is the bound address of a's listener name.
func listenerAddr(t testing.TB, a *Agent, name string) string {
	t.Helper()
	for _, l := range a.sec.listeners {
		if l.cfg.Name == name {
			return l.ln.Addr().String()
		}
	}
	t.Fatalf("no listener %s", name)
	return ""
}

// addUser stores user's SCRAM credentials for both mechanisms and waits until every agent sees them.
func addUser(t testing.TB, tc *testCluster, user, pass string, agents ...*Agent) {
	t.Helper()
	cl := tc.client()
	for _, m := range []string{auth.MechanismScramSHA256, auth.MechanismScramSHA512} {
		cred, err := auth.NewScramCredential(m, pass, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.PutScramCredential(testCtx(t), user, m, cred); err != nil {
			t.Fatal(err)
		}
	}
	for _, a := range agents {
		waitFor(t.(*testing.T), "the agent to see user "+user, func() bool {
			_, ok256 := a.cache.ScramCredential(user, auth.MechanismScramSHA256)
			_, ok512 := a.cache.ScramCredential(user, auth.MechanismScramSHA512)
			return ok256 && ok512
		})
	}
}

func secClient(t *testing.T, addr string, tlsCfg *tls.Config, m sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	o := []kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(50 * time.Millisecond), kgo.RequestRetries(2)}
	if tlsCfg != nil {
		o = append(o, kgo.DialTLSConfig(tlsCfg))
	}
	if m != nil {
		o = append(o, kgo.SASL(m))
	}
	cl, err := kgo.NewClient(append(o, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// produceConsume produces one record to topic and reads it back.
func produceConsume(t *testing.T, cl *kgo.Client, topic, value string) {
	t.Helper()
	ctx := testCtx(t)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	cl.AddConsumeTopics(topic)
	for {
		fs := cl.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("fetch: %v", err)
		}
		for _, r := range fs.Records() {
			if string(r.Value) == value {
				cl.PurgeTopicsFromClient(topic)
				return
			}
		}
	}
}

// Each SASL mechanism authenticates a franz-go client over TLS, which then produces and consumes.
func TestSASLSSLEachMechanism(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	a := tc.agent("a1", f.listeners([]string{"alice", "svc"}, ProtocolSASLSSL))
	addUser(t, tc, "alice", "pässword", a)
	addr := listenerAddr(t, a, ProtocolSASLSSL)
	alice := scram.Auth{User: "alice", Pass: "pässword"}
	mechs := map[string]sasl.Mechanism{
		"PLAIN":         plain.Auth{User: "alice", Pass: "pässword"}.AsMechanism(),
		"SCRAM-SHA-256": alice.AsSha256Mechanism(),
		"SCRAM-SHA-512": alice.AsSha512Mechanism(),
		"OAUTHBEARER":   oauth.Auth{Token: f.token(t, "svc", time.Now().Add(time.Hour))}.AsMechanism(),
	}
	admin := secClient(t, addr, f.clientTLS(t), mechs["SCRAM-SHA-256"])
	createTopic(t, admin, "secured", 1, nil)
	for name, m := range mechs {
		cl := secClient(t, addr, f.clientTLS(t), m)
		produceConsume(t, cl, "secured", "by "+name)
	}
}

// A wrong password, an unknown user, an expired or foreign token fail with
// SASL_AUTHENTICATION_FAILED; a client without TLS to the TLS port, and one that does not trust the
// certificate, get no answer at all.
func TestSASLRefusals(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	a := tc.agent("a1", f.listeners([]string{"alice"}, ProtocolSASLSSL))
	addUser(t, tc, "alice", "secret", a)
	addr := listenerAddr(t, a, ProtocolSASLSSL)
	other := newSecFixture(t)
	for name, m := range map[string]sasl.Mechanism{
		"wrong password":  scram.Auth{User: "alice", Pass: "guess"}.AsSha256Mechanism(),
		"unknown user":    scram.Auth{User: "mallory", Pass: "secret"}.AsSha512Mechanism(),
		"plain wrong":     plain.Auth{User: "alice", Pass: "guess"}.AsMechanism(),
		"expired token":   oauth.Auth{Token: f.token(t, "alice", time.Now().Add(-time.Hour))}.AsMechanism(),
		"untrusted token": oauth.Auth{Token: other.token(t, "alice", time.Now().Add(time.Hour))}.AsMechanism(),
	} {
		cl := secClient(t, addr, f.clientTLS(t), m)
		err := cl.Ping(testCtx(t))
		if !errors.Is(err, kerr.SaslAuthenticationFailed) {
			t.Errorf("%s: got %v, want SASL_AUTHENTICATION_FAILED", name, err)
		}
		if strings.Contains(name, "token") && (err == nil || !strings.Contains(err.Error(), "invalid_token")) {
			t.Errorf("%s: %v does not carry OAUTHBEARER's invalid_token", name, err)
		}
	}

	// Plaintext to the TLS port: the TLS handshake fails, nothing Kafka is answered.
	rc := dialRawAddr(t, addr)
	rc.writeRefused(frameOf(kmsg.NewPtrMetadataRequest(), 1, 1))
	rc.expectClosed()

	// TLS but no SASL: Metadata closes the connection, naming no topic.
	rc = dialRawTLS(t, addr, f.clientTLS(t))
	rc.send(kmsg.NewPtrMetadataRequest(), 1)
	rc.expectClosed()

	// A client that does not trust the agent's certificate refuses it.
	ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
	defer cancel()
	cl := secClient(t, addr, other.clientTLS(t), scram.Auth{User: "alice", Pass: "secret"}.AsSha256Mechanism())
	var ue x509.UnknownAuthorityError
	if err := cl.Ping(ctx); !errors.As(err, &ue) {
		t.Errorf("untrusted certificate: got %v, want x509.UnknownAuthorityError", err)
	}
}

// dialRawTLS is dialRaw to addr, over TLS when cfg is given.
func dialRawTLS(t *testing.T, addr string, cfg *tls.Config) *rawConn {
	t.Helper()
	var nc net.Conn
	var err error
	if cfg != nil {
		nc, err = tls.Dial("tcp", addr, cfg)
	} else {
		nc, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// saslLogin runs a SCRAM or PLAIN exchange on a raw connection with SaslHandshake and
// SaslAuthenticate at version v, and returns the last answer.
func saslLogin(t *testing.T, rc *rawConn, m sasl.Mechanism, v int16) *kmsg.SASLAuthenticateResponse {
	t.Helper()
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = m.Name()
	if r := rc.roundTrip(hs, 1).(*kmsg.SASLHandshakeResponse); r.ErrorCode != 0 {
		t.Fatalf("handshake: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	sess, msg, err := m.Authenticate(context.Background(), "agent")
	if err != nil {
		t.Fatal(err)
	}
	for {
		req := kmsg.NewPtrSASLAuthenticateRequest()
		req.SASLAuthBytes = msg
		resp := rc.roundTrip(req, v).(*kmsg.SASLAuthenticateResponse)
		if resp.ErrorCode != 0 {
			return resp
		}
		done, next, err := sess.Challenge(resp.SASLAuthBytes)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			return resp
		}
		msg = next
	}
}

// A SASL listener answers ApiVersions before authentication and closes the connection at any other
// request, as Kafka does; after a failed authentication it closes it too.
func TestSASLListenerRefusesRequestsBeforeAuthentication(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	a := tc.agent("a1", f.listeners(nil, ProtocolSASLPlaintext))
	addUser(t, tc, "alice", "secret", a)
	addr := listenerAddr(t, a, ProtocolSASLPlaintext)

	rc := dialRawAddr(t, addr)
	if r := rc.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3).(*kmsg.ApiVersionsResponse); r.ErrorCode != 0 {
		t.Fatalf("ApiVersions: %v", kerr.ErrorForCode(r.ErrorCode))
	}
	rc.send(kmsg.NewPtrMetadataRequest(), 1)
	rc.expectClosed()

	rc = dialRawAddr(t, addr)
	resp := saslLogin(t, rc, scram.Auth{User: "alice", Pass: "wrong"}.AsSha256Mechanism(), 1)
	wantCode(t, "wrong password", resp.ErrorCode, kerr.SaslAuthenticationFailed)
	if resp.ErrorMessage == nil || strings.Contains(*resp.ErrorMessage, "wrong") {
		t.Errorf("error message %v: want one that names no secret", resp.ErrorMessage)
	}
	rc.send(kmsg.NewPtrMetadataRequest(), 1)
	rc.expectClosed()

	rc = dialRawAddr(t, addr)
	resp = saslLogin(t, rc, scram.Auth{User: "alice", Pass: "secret"}.AsSha512Mechanism(), 2)
	wantOK(t, "login", resp.ErrorCode)
	if md := rc.roundTrip(kmsg.NewPtrMetadataRequest(), 1).(*kmsg.MetadataResponse); len(md.Brokers) != 1 {
		t.Fatalf("metadata after login: %d brokers", len(md.Brokers))
	}

	// An unknown mechanism is UNSUPPORTED_SASL_MECHANISM with the enabled ones.
	rc = dialRawAddr(t, addr)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = "GSSAPI"
	r := rc.roundTrip(hs, 1).(*kmsg.SASLHandshakeResponse)
	wantCode(t, "GSSAPI", r.ErrorCode, kerr.UnsupportedSaslMechanism)
	if len(r.SupportedMechanisms) != len(auth.AllMechanisms) {
		t.Errorf("supported mechanisms %v", r.SupportedMechanisms)
	}
}

// SaslHandshake on a listener without SASL is ILLEGAL_SASL_STATE, and the PLAINTEXT default serves
// requests without authentication as before.
func TestSaslHandshakeOnPlaintextListener(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	rc := dialRaw(t, a)
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = auth.MechanismPlain
	wantCode(t, "handshake", rc.roundTrip(hs, 1).(*kmsg.SASLHandshakeResponse).ErrorCode, kerr.IllegalSaslState)
	if md := rc.roundTrip(kmsg.NewPtrMetadataRequest(), 1).(*kmsg.MetadataResponse); len(md.Brokers) != 1 {
		t.Fatalf("metadata: %d brokers", len(md.Brokers))
	}
}

// After a v0 SaslHandshake the exchange is bare tokens, as old clients send them.
func TestSaslHandshakeV0BareTokens(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	a := tc.agent("a1", f.listeners(nil, ProtocolSASLPlaintext))
	addUser(t, tc, "alice", "secret", a)
	rc := dialRawAddr(t, listenerAddr(t, a, ProtocolSASLPlaintext))
	hs := kmsg.NewPtrSASLHandshakeRequest()
	hs.Mechanism = auth.MechanismScramSHA256
	wantOK(t, "handshake", rc.roundTrip(hs, 0).(*kmsg.SASLHandshakeResponse).ErrorCode)
	sess, msg, err := scram.Auth{User: "alice", Pass: "secret"}.AsSha256Mechanism().Authenticate(context.Background(), "agent")
	if err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		rc.writeRaw(binary.BigEndian.AppendUint32(nil, uint32(len(msg))))
		rc.writeRaw(msg)
		var size [4]byte
		rc.nc.SetReadDeadline(time.Now().Add(rawIOTimeout))
		if _, err := io.ReadFull(rc.r, size[:]); err != nil {
			t.Fatal(err)
		}
		token := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(rc.r, token); err != nil {
			t.Fatal(err)
		}
		if done, msg, err = sess.Challenge(token); err != nil {
			t.Fatal(err)
		}
	}
	if md := rc.roundTrip(kmsg.NewPtrMetadataRequest(), 1).(*kmsg.MetadataResponse); len(md.Brokers) != 1 {
		t.Fatalf("metadata after a v0 login: %d brokers", len(md.Brokers))
	}
}

// KIP-368: SaslAuthenticate v1 announces the session lifetime (connections.max.reauth or a token's
// expiry, the sooner); a re-authentication as the same user extends it, as another user fails; past
// the lifetime the connection is closed at its next request; franz-go re-authenticates by itself.
func TestSASLSessionLifetime(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	const reauth = 800 * time.Millisecond
	a := tc.agent("a1", f.listeners([]string{"alice"}, ProtocolSASLPlaintext), func(c *Config) { c.Security.ConnectionsMaxReauth = reauth })
	addUser(t, tc, "alice", "secret", a)
	addUser(t, tc, "bob", "secret", a)
	addr := listenerAddr(t, a, ProtocolSASLPlaintext)
	alice := scram.Auth{User: "alice", Pass: "secret"}.AsSha256Mechanism()

	rc := dialRawAddr(t, addr)
	resp := saslLogin(t, rc, alice, 1)
	wantOK(t, "login", resp.ErrorCode)
	if got := time.Duration(resp.SessionLifetimeMillis) * time.Millisecond; got != reauth {
		t.Fatalf("session lifetime %v, want %v", got, reauth)
	}
	wantOK(t, "re-authentication", saslLogin(t, rc, alice, 1).ErrorCode)
	wantCode(t, "re-authentication as another user",
		saslLogin(t, rc, scram.Auth{User: "bob", Pass: "secret"}.AsSha256Mechanism(), 1).ErrorCode, kerr.SaslAuthenticationFailed)

	rc = dialRawAddr(t, addr)
	wantOK(t, "login", saslLogin(t, rc, alice, 2).ErrorCode)
	expires := time.Now().Add(reauth)
	time.Sleep(time.Until(expires) + 50*time.Millisecond) // the lifetime must pass: nothing to wait on
	rc.send(kmsg.NewPtrMetadataRequest(), 1)
	rc.expectClosed()

	// A token's expiry bounds the session sooner than connections.max.reauth.
	rc = dialRawAddr(t, addr)
	tok := oauth.Auth{Token: f.token(t, "alice", time.Now().Add(300*time.Millisecond))}.AsMechanism()
	resp = saslLogin(t, rc, tok, 1)
	wantOK(t, "token login", resp.ErrorCode)
	if got := time.Duration(resp.SessionLifetimeMillis) * time.Millisecond; got <= 0 || got > 300*time.Millisecond {
		t.Fatalf("token session lifetime %v, want at most the token's 300ms", got)
	}

	// franz-go re-authenticates before the lifetime ends and goes on producing.
	cl := secClient(t, addr, nil, alice)
	createTopic(t, cl, "reauth", 1, nil)
	for i := range 3 {
		if err := cl.ProduceSync(testCtx(t), &kgo.Record{Topic: "reauth", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
		time.Sleep(reauth * 3 / 4) // across the session's end
	}
	produceConsume(t, cl, "reauth", "last")
}

// An SSL listener with a client CA requires a client certificate: without one, or with one of
// another CA, the handshake fails; with one, the client is served.
func TestSSLClientCertificates(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	a := tc.agent("a1", f.listeners([]string{"CN=alice,O=Example"}, ProtocolSSL), func(c *Config) {
		c.Security.TLSClientCAFile = f.ca.CertFile
	})
	addr := listenerAddr(t, a, ProtocolSSL)
	alice := f.ca.Client(t, pkix.Name{CommonName: "alice", Organization: []string{"Example"}})
	withCert := func(files authtest.Files) *tls.Config {
		cfg := f.clientTLS(t)
		pair, err := tls.LoadX509KeyPair(files.CertFile, files.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
		return cfg
	}
	cl := secClient(t, addr, withCert(alice), nil)
	createTopic(t, cl, "mtls", 1, nil)
	produceConsume(t, cl, "mtls", "v")

	other := newSecFixture(t).ca.Client(t, pkix.Name{CommonName: "alice"})
	for name, cfg := range map[string]*tls.Config{"no certificate": f.clientTLS(t), "foreign CA": withCert(other)} {
		ctx, cancel := context.WithTimeout(testCtx(t), 5*time.Second)
		if err := secClient(t, addr, cfg, nil).Ping(ctx); err == nil {
			t.Errorf("%s: ping succeeded", name)
		}
		cancel()
	}
}

// ParseListeners reads Kafka's listener settings.
func TestParseListeners(t *testing.T) {
	t.Parallel()
	ls, err := ParseListeners("CLIENT://0.0.0.0:9093,PLAINTEXT://127.0.0.1:9092", "CLIENT://kafka1.example:9093",
		"CLIENT:SASL_SSL")
	if err != nil {
		t.Fatal(err)
	}
	want := []ListenerConfig{
		{Name: "CLIENT", Protocol: ProtocolSASLSSL, Addr: "0.0.0.0:9093", Advertised: "kafka1.example:9093"},
		{Name: "PLAINTEXT", Protocol: ProtocolPlaintext, Addr: "127.0.0.1:9092"},
	}
	if len(ls) != 2 || ls[0] != want[0] || ls[1] != want[1] {
		t.Fatalf("got %+v, want %+v", ls, want)
	}
	for _, bad := range [][3]string{
		{"CLIENT://:9093", "", ""},                         // no protocol for CLIENT
		{"PLAINTEXT://nohost", "", ""},                     // no port
		{"PLAINTEXT://:9092", "SSL://:9093", ""},           // advertised but not a listener
		{"X://:1", "", "X"},                                // map entry without a protocol
		{"PLAINTEXT:/:9092", "", ""},                       // not NAME://
		{"SSL://:9093,SSL://:9094", "", ""},                // given twice (Validate)
		{"CLIENT://:9093", "", "CLIENT:SASL_SCRAM"},        // unknown protocol (Validate)
		{"SSL://:9093", "", ""},                            // SSL without certificate (Validate)
		{"SASL_SSL://127.0.0.1:9093", "", "SASL_SSL:CERT"}, // unknown protocol (Validate)
	} {
		ls, err := ParseListeners(bad[0], bad[1], bad[2])
		if err == nil {
			cfg := NewConfig()
			cfg.ID, cfg.Listeners = "x", ls
			err = cfg.Validate()
		}
		if err == nil {
			t.Errorf("%q %q %q: accepted", bad[0], bad[1], bad[2])
		}
	}
}

// Each client is told the addresses of the listener it connected to, as Kafka does: Metadata,
// FindCoordinator and DescribeCluster through a SASL listener name the SASL listeners.
func TestBrokersAdvertisedPerListener(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	tc := newTestCluster(t)
	opts := func(c *Config) {
		f.listeners([]string{"alice", "ANONYMOUS"}, ProtocolSASLPlaintext)(c)
		c.Listeners = append([]ListenerConfig{{Name: "INSIDE", Protocol: ProtocolPlaintext, Addr: "127.0.0.1:0"}}, c.Listeners...)
	}
	a1, a2 := tc.agent("a1", opts), tc.agent("a2", opts)
	addUser(t, tc, "alice", "secret", a1, a2)
	want := map[string]map[string]bool{}
	for _, name := range []string{"INSIDE", ProtocolSASLPlaintext} {
		want[name] = map[string]bool{listenerAddr(t, a1, name): true, listenerAddr(t, a2, name): true}
	}
	if a1.KafkaAddr() != listenerAddr(t, a1, "INSIDE") {
		t.Fatalf("KafkaAddr %s is not the first listener's", a1.KafkaAddr())
	}
	waitFor(t, "both agents registered", func() bool { return len(a1.brokers()) == 2 })
	for name, m := range map[string]sasl.Mechanism{"INSIDE": nil, ProtocolSASLPlaintext: scram.Auth{User: "alice", Pass: "secret"}.AsSha256Mechanism()} {
		rc := dialRawAddr(t, listenerAddr(t, a1, name))
		if m != nil {
			wantOK(t, "login", saslLogin(t, rc, m, 2).ErrorCode)
		}
		md := rc.roundTrip(kmsg.NewPtrMetadataRequest(), 9).(*kmsg.MetadataResponse)
		dc := rc.roundTrip(kmsg.NewPtrDescribeClusterRequest(), 0).(*kmsg.DescribeClusterResponse)
		if len(md.Brokers) != 2 || len(dc.Brokers) != 2 {
			t.Fatalf("%s: %d and %d brokers", name, len(md.Brokers), len(dc.Brokers))
		}
		for i := range md.Brokers {
			for _, hp := range [][2]any{{md.Brokers[i].Host, md.Brokers[i].Port}, {dc.Brokers[i].Host, dc.Brokers[i].Port}} {
				if addr := net.JoinHostPort(hp[0].(string), strconv.Itoa(int(hp[1].(int32)))); !want[name][addr] {
					t.Errorf("%s: broker at %s, want one of %v", name, addr, want[name])
				}
			}
		}
	}
}
