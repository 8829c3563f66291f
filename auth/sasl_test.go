package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"hash"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/streamhouse/streamhouse/coord"
)

// fakeCreds is a CredentialSource over a map.
type fakeCreds map[string]coord.ScramCredential // "user mechanism" → credential

func (f fakeCreds) ScramCredential(user, mech string) (coord.ScramCredential, bool) {
	c, ok := f[user+" "+mech]
	return c, ok
}

func (f fakeCreds) add(t testing.TB, user, password string, mechs ...string) {
	t.Helper()
	for _, m := range mechs {
		c, err := NewScramCredential(m, password, MinScramIterations)
		if err != nil {
			t.Fatal(err)
		}
		f[user+" "+m] = c
	}
}

func newSASL(t testing.TB, cfg SASLConfig) *SASL {
	t.Helper()
	s, err := NewSASL(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// exchange runs a franz-go client mechanism against a server session to its end, as the Kafka
// path will with SaslAuthenticate. It returns the server's identity, or the first error of either
// side.
func exchange(t testing.TB, s *SASL, m sasl.Mechanism) (Identity, error) {
	t.Helper()
	cs, msg, err := m.Authenticate(context.Background(), "127.0.0.1:9092")
	if err != nil {
		t.Fatal(err)
	}
	ss, err := s.Start(m.Name())
	if err != nil {
		return Identity{}, err
	}
	for range 4 {
		resp, done, err := ss.Step(msg)
		if err != nil {
			return Identity{}, err
		}
		cdone, next, cerr := cs.Challenge(resp)
		if cerr != nil {
			return Identity{}, cerr
		}
		if done {
			if !cdone {
				t.Fatal("server done, client not")
			}
			return ss.Identity(), nil
		}
		msg = next
	}
	t.Fatal("exchange did not end")
	return Identity{}, nil
}

func TestSCRAMWithFranzGo(t *testing.T) {
	t.Parallel()
	creds := fakeCreds{}
	creds.add(t, "alice", "s3cret-ü", MechanismScramSHA256, MechanismScramSHA512)
	creds.add(t, "we,ird=name", "pw", MechanismScramSHA256)
	reg := prometheus.NewRegistry()
	s := newSASL(t, SASLConfig{Credentials: creds, Registerer: reg})
	for _, tc := range []struct {
		user, pass string
		mech       func(scram.Auth) sasl.Mechanism
		ok         bool
	}{
		{"alice", "s3cret-ü", func(a scram.Auth) sasl.Mechanism { return a.AsSha256Mechanism() }, true},
		{"alice", "s3cret-ü", func(a scram.Auth) sasl.Mechanism { return a.AsSha512Mechanism() }, true},
		{"we,ird=name", "pw", func(a scram.Auth) sasl.Mechanism { return a.AsSha256Mechanism() }, true},
		{"we,ird=name", "pw", func(a scram.Auth) sasl.Mechanism { return a.AsSha512Mechanism() }, false}, // no SHA-512 credential
		{"alice", "wrong", func(a scram.Auth) sasl.Mechanism { return a.AsSha256Mechanism() }, false},
		{"bob", "s3cret-ü", func(a scram.Auth) sasl.Mechanism { return a.AsSha256Mechanism() }, false},
	} {
		id, err := exchange(t, s, tc.mech(scram.Auth{User: tc.user, Pass: tc.pass}))
		if tc.ok && (err != nil || id.Principal != User(tc.user)) {
			t.Errorf("%s/%s: %+v, %v; want authenticated", tc.user, tc.pass, id, err)
		}
		if !tc.ok && !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("%s/%s: %+v, %v; want ErrAuthenticationFailed", tc.user, tc.pass, id, err)
		}
		if err != nil && strings.Contains(err.Error(), tc.pass) {
			t.Errorf("error %q holds the password", err)
		}
	}
	if ok := testutil.ToFloat64(s.metrics.results[MechanismScramSHA256][1]); ok != 2 {
		t.Errorf("SHA-256 successes counted %v, want 2", ok)
	}
}

// An unknown user is told nothing at the first step: a salt and iterations come back as for a known
// one, stable across attempts, and the exchange fails only at the proof.
func TestSCRAMUnknownUserFailsAtProof(t *testing.T) {
	t.Parallel()
	creds := fakeCreds{}
	creds.add(t, "alice", "pw", MechanismScramSHA256)
	s := newSASL(t, SASLConfig{Credentials: creds})
	first := func(user string) string {
		ss, _ := s.Start(MechanismScramSHA256)
		resp, done, err := ss.Step([]byte("n,,n=" + user + ",r=abcdef"))
		if err != nil || done {
			t.Fatalf("first step of %s: %v %v", user, done, err)
		}
		i := strings.Index(string(resp), ",s=")
		return string(resp[i:]) // salt and iterations, without the nonce
	}
	a, b := first("mallory"), first("mallory")
	if a != b || !strings.HasSuffix(a, ",i=4096") {
		t.Fatalf("unknown user's server-first %q then %q", a, b)
	}
	if _, err := exchange(t, s, scram.Auth{User: "mallory", Pass: "pw"}.AsSha256Mechanism()); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestSCRAMRefusesWhatKafkaRefuses(t *testing.T) {
	t.Parallel()
	creds := fakeCreds{}
	creds.add(t, "alice", "pw", MechanismScramSHA256)
	s := newSASL(t, SASLConfig{Credentials: creds})
	for _, first := range []string{
		"n,a=bob,n=alice,r=abc",           // authorization id of another user
		"n,,n=alice,r=abc,tokenauth=true", // delegation token
		"p=tls-unique,,n=alice,r=abc",     // channel binding
		"n,,m=ext,n=alice,r=abc",          // mandatory extension
		",,n=alice,r=abc",                 // empty GS2 flag (panicked xdg-go/scram v1.1.2)
		"n,,n=al=ice,r=abc",               // bad saslname escape
		"n,,n=alice",                      // no nonce
		"n,,n=alice,r=",                   // empty nonce
		"n,,n=alice,r=a\x01b",             // unprintable nonce
		"",                                // nothing
	} {
		ss, _ := s.Start(MechanismScramSHA256)
		if _, _, err := ss.Step([]byte(first)); !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("client-first %q: %v; want ErrAuthenticationFailed", first, err)
		}
		if _, _, err := ss.Step([]byte("c=biws,r=abc,p=AAAA")); !errors.Is(err, ErrIllegalState) {
			t.Errorf("client-first %q: a second step answered %v; want ErrIllegalState", first, err)
		}
	}
	// A proof longer than the hash (panicked xdg-go/scram v1.1.2).
	ss, _ := s.Start(MechanismScramSHA256)
	resp, _, err := ss.Step([]byte("n,,n=alice,r=abc"))
	if err != nil {
		t.Fatal(err)
	}
	nonce := strings.TrimPrefix(strings.Split(string(resp), ",")[0], "r=")
	long := "c=biws,r=" + nonce + ",p=" + strings.Repeat("AAAA", 20)
	if _, _, err := ss.Step([]byte(long)); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("long proof: %v", err)
	}
}

func TestPlainAgainstScramCredentials(t *testing.T) {
	t.Parallel()
	creds := fakeCreds{}
	creds.add(t, "alice", "pw-a", MechanismScramSHA256, MechanismScramSHA512)
	creds.add(t, "only512", "pw-b", MechanismScramSHA512)
	s := newSASL(t, SASLConfig{Credentials: creds})
	for _, tc := range []struct {
		zid, user, pass string
		ok              bool
	}{
		{"", "alice", "pw-a", true},
		{"alice", "alice", "pw-a", true},
		{"", "only512", "pw-b", true},
		{"", "alice", "pw-b", false},
		{"bob", "alice", "pw-a", false},
		{"", "nobody", "pw-a", false},
	} {
		id, err := exchange(t, s, plain.Auth{Zid: tc.zid, User: tc.user, Pass: tc.pass}.AsMechanism())
		if tc.ok != (err == nil) || (tc.ok && id != (Identity{Principal: User(tc.user), Mechanism: MechanismPlain})) {
			t.Errorf("%+v: %+v, %v", tc, id, err)
		}
	}
	for _, msg := range []string{"", "a\x00b", "\x00\x00pw", "\x00alice\x00", "\x00alice\x00pw-a\x00", "\x00\xff\x00pw"} {
		ss, _ := s.Start(MechanismPlain)
		if _, _, err := ss.Step([]byte(msg)); !errors.Is(err, ErrAuthenticationFailed) {
			t.Errorf("PLAIN %q: %v", msg, err)
		}
	}
}

func TestSASLConfig(t *testing.T) {
	t.Parallel()
	if _, err := NewSASL(SASLConfig{}); err == nil {
		t.Fatal("SASL without mechanisms")
	}
	if _, err := NewSASL(SASLConfig{Mechanisms: []string{MechanismOAuthBearer}, Credentials: fakeCreds{}}); err == nil {
		t.Fatal("OAUTHBEARER without a validator")
	}
	if _, err := NewSASL(SASLConfig{Mechanisms: []string{"GSSAPI"}, Credentials: fakeCreds{}}); err == nil {
		t.Fatal("GSSAPI accepted")
	}
	s := newSASL(t, SASLConfig{Mechanisms: []string{MechanismScramSHA512}, Credentials: fakeCreds{}})
	if _, err := s.Start(MechanismPlain); !errors.Is(err, ErrUnsupportedMechanism) {
		t.Fatalf("PLAIN on a SCRAM-SHA-512 listener: %v", err)
	}
	if got := s.Mechanisms(); len(got) != 1 || got[0] != MechanismScramSHA512 {
		t.Fatalf("mechanisms %v", got)
	}
}

func TestSessionLifetimeAndReauth(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	pw := Identity{Principal: User("a"), Mechanism: MechanismPlain}
	tok := Identity{Principal: User("a"), Mechanism: MechanismOAuthBearer, Expiry: now.Add(time.Minute)}
	for _, tc := range []struct {
		id   Identity
		max  time.Duration
		want time.Duration
	}{
		{pw, 0, 0}, {pw, time.Hour, time.Hour}, {tok, 0, time.Minute}, {tok, time.Hour, time.Minute}, {tok, time.Second, time.Second},
		{Identity{Expiry: now.Add(-time.Second)}, 0, time.Millisecond},
	} {
		if got := tc.id.SessionLifetime(now, tc.max); got != tc.want {
			t.Errorf("%+v max %v: %v, want %v", tc.id, tc.max, got, tc.want)
		}
	}
	if err := CheckReauth(pw, pw); err != nil {
		t.Fatal(err)
	}
	if err := CheckReauth(pw, Identity{Principal: User("b"), Mechanism: MechanismPlain}); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("principal change: %v", err)
	}
}

func TestNewScramCredential(t *testing.T) {
	t.Parallel()
	a, err := NewScramCredential(MechanismScramSHA512, "pw", 8192)
	if err != nil || len(a.Salt) != 32 || a.Iterations != 8192 || len(a.StoredKey) != 64 || len(a.ServerKey) != 64 {
		t.Fatalf("%+v %v", a, err)
	}
	b, _ := NewScramCredential(MechanismScramSHA512, "pw", 8192)
	if string(a.Salt) == string(b.Salt) || string(a.StoredKey) == string(b.StoredKey) {
		t.Fatal("two credentials of one password share a salt")
	}
	if !verifyPassword(MechanismScramSHA512, "pw", a) || verifyPassword(MechanismScramSHA512, "pW", a) {
		t.Fatal("verifyPassword")
	}
	for _, bad := range []struct {
		mech, pw string
		iter     int
	}{{MechanismScramSHA256, "", 4096}, {MechanismScramSHA256, "x", 4095}, {MechanismScramSHA256, "x", 16385}, {"SCRAM-SHA-1", "x", 4096}} {
		if _, err := NewScramCredential(bad.mech, bad.pw, bad.iter); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// A credential made from a salted password, as AlterUserScramCredentials carries it, is the one
// the password makes with that salt: the password logs in.
func TestScramCredentialFromSalted(t *testing.T) {
	t.Parallel()
	for _, m := range []string{MechanismScramSHA256, MechanismScramSHA512} {
		want, err := NewScramCredential(m, "pw", 4096)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New
		if m == MechanismScramSHA512 {
			h = sha512.New
		}
		salted := pbkdf2Key(h, []byte("pw"), want.Salt, 4096)
		got, err := ScramCredentialFromSalted(m, want.Salt, salted, 4096)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.StoredKey, want.StoredKey) || !bytes.Equal(got.ServerKey, want.ServerKey) {
			t.Errorf("%s: keys differ from the password's", m)
		}
		if !verifyPassword(m, "pw", got) {
			t.Errorf("%s: the password does not verify", m)
		}
		if _, err := ScramCredentialFromSalted(m, want.Salt, salted[:10], 4096); err == nil {
			t.Errorf("%s: a short salted password accepted", m)
		}
		if _, err := ScramCredentialFromSalted(m, want.Salt, salted, 100); err == nil {
			t.Errorf("%s: 100 iterations accepted", m)
		}
	}
}

// pbkdf2Key is PBKDF2 with one block, enough for SHA-256 and SHA-512 keys of their own size.
func pbkdf2Key(h func() hash.Hash, pw, salt []byte, iter int) []byte {
	m := hmac.New(h, pw)
	m.Write(salt)
	m.Write([]byte{0, 0, 0, 1})
	u := m.Sum(nil)
	out := bytes.Clone(u)
	for range iter - 1 {
		m.Reset()
		m.Write(u)
		u = m.Sum(u[:0])
		for i := range out {
			out[i] ^= u[i]
		}
	}
	return out
}
