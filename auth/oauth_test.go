package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// testRSAKey is one 2048-bit key for the whole test binary: generating one takes a while.
func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

func writePublicPEM(t testing.TB, pub any) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func sign(t testing.TB, m jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var testNow = time.Unix(1_700_000_000, 0)

func claims(sub string, exp time.Duration) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": testNow.Add(exp).Unix(), "iss": "https://idp", "aud": "streamhouse"}
}

func newValidator(t testing.TB, cfg OAuthConfig) *OAuthValidator {
	t.Helper()
	cfg.Now = func() time.Time { return testNow }
	v, err := NewOAuthValidator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOAuthBearerWithFranzGo(t *testing.T) {
	t.Parallel()
	key := testRSAKey(t)
	v := newValidator(t, OAuthConfig{KeyFiles: []string{writePublicPEM(t, &key.PublicKey)}, Issuer: "https://idp", Audience: []string{"other", "streamhouse"}})
	s := newSASL(t, SASLConfig{OAuth: v})
	other, _ := rsa.GenerateKey(rand.Reader, 1024)
	hmacTok := sign(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&key.PublicKey), "", claims("alice", time.Hour))
	noExp := claims("alice", time.Hour)
	delete(noExp, "exp")
	wrongIss := claims("alice", time.Hour)
	wrongIss["iss"] = "https://evil"
	for _, tc := range []struct {
		name, token, zid string
		ok               bool
	}{
		{"valid", sign(t, jwt.SigningMethodRS256, key, "", claims("alice", time.Hour)), "", true},
		{"valid, PS512", sign(t, jwt.SigningMethodPS512, key, "", claims("alice", time.Hour)), "alice", true},
		{"authorization id of another", sign(t, jwt.SigningMethodRS256, key, "", claims("alice", time.Hour)), "bob", false},
		{"expired beyond the skew", sign(t, jwt.SigningMethodRS256, key, "", claims("alice", -time.Minute)), "", false},
		{"another key", sign(t, jwt.SigningMethodRS256, other, "", claims("alice", time.Hour)), "", false},
		{"HMAC with the public key as secret", hmacTok, "", false},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", claims("alice", time.Hour)), "", false},
		{"no exp", sign(t, jwt.SigningMethodRS256, key, "", noExp), "", false},
		{"wrong issuer", sign(t, jwt.SigningMethodRS256, key, "", wrongIss), "", false},
		{"no sub", sign(t, jwt.SigningMethodRS256, key, "", jwt.MapClaims{"exp": testNow.Add(time.Hour).Unix(), "iss": "https://idp", "aud": "streamhouse"}), "", false},
	} {
		id, err := exchange(t, s, oauth.Auth{Token: tc.token, Zid: tc.zid}.AsMechanism())
		if tc.ok && (err != nil || id.Principal != User("alice") || !id.Expiry.Equal(testNow.Add(time.Hour))) {
			t.Errorf("%s: %+v, %v", tc.name, id, err)
		}
		if !tc.ok && err == nil {
			t.Errorf("%s: authenticated as %+v", tc.name, id)
		}
	}
}

// A refused token gets Kafka's answer: the error status, then failure after the client's %x01.
func TestOAuthBearerFailureExchange(t *testing.T) {
	t.Parallel()
	key := testRSAKey(t)
	s := newSASL(t, SASLConfig{OAuth: newValidator(t, OAuthConfig{KeyFiles: []string{writePublicPEM(t, &key.PublicKey)}})})
	ss, _ := s.Start(MechanismOAuthBearer)
	resp, done, err := ss.Step([]byte("n,,\x01auth=Bearer abc.def.ghi\x01\x01"))
	if err != nil || done || string(resp) != oauthErrorStatus {
		t.Fatalf("first step: %q %v %v", resp, done, err)
	}
	if _, _, err := ss.Step([]byte{1}); !errors.Is(err, ErrAuthenticationFailed) {
		t.Fatalf("second step: %v", err)
	}
	if _, _, err := ss.Step([]byte{1}); !errors.Is(err, ErrIllegalState) {
		t.Fatalf("third step: %v", err)
	}
}

func jwkOf(t testing.TB, kid string, pub any) map[string]string {
	b64 := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())}
	case *ecdsa.PublicKey:
		raw, _ := k.Bytes()
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64(raw[1:33]), "y": b64(raw[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k)}
	}
	t.Fatalf("key %T", pub)
	return nil
}

func writeJWKS(t testing.TB, path string, mtime time.Time, keys ...map[string]string) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"keys": keys})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestOAuthJWKSKeysAndReload(t *testing.T) {
	t.Parallel()
	ec1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	rsa1 := testRSAKey(t)
	path := filepath.Join(t.TempDir(), "jwks.json")
	writeJWKS(t, path, testNow, jwkOf(t, "ec1", &ec1.PublicKey), jwkOf(t, "rsa1", &rsa1.PublicKey),
		map[string]string{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}) // an encryption key: skipped
	clock := testNow
	v, err := NewOAuthValidator(OAuthConfig{JWKSFile: path, PrincipalClaim: "client_id", Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	c := jwt.MapClaims{"client_id": "svc", "exp": testNow.Add(time.Hour).Unix()}
	for _, tok := range []string{sign(t, jwt.SigningMethodES256, ec1, "ec1", c), sign(t, jwt.SigningMethodRS256, rsa1, "", c)} {
		if name, _, err := v.Validate(tok); err != nil || name != "svc" {
			t.Fatalf("valid token: %q %v", name, err)
		}
	}
	edTok := sign(t, jwt.SigningMethodEdDSA, edPriv, "ed1", c)
	if _, _, err := v.Validate(edTok); err == nil {
		t.Fatal("a token of a key not in the set validated")
	}
	// Rotation: the file gains the Ed25519 key and loses ec1. Within a second nothing is re-read.
	writeJWKS(t, path, testNow.Add(time.Minute), jwkOf(t, "ed1", edPub))
	if _, _, err := v.Validate(edTok); err == nil {
		t.Fatal("re-read within the check interval")
	}
	clock = clock.Add(2 * time.Second)
	if _, _, err := v.Validate(edTok); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if _, _, err := v.Validate(sign(t, jwt.SigningMethodES256, ec1, "ec1", c)); err == nil {
		t.Fatal("a removed key still validates")
	}
	// A broken file keeps the keys read before.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Second)
	if _, _, err := v.Validate(edTok); err != nil {
		t.Fatalf("after a broken rewrite: %v", err)
	}
}

func TestOAuthValidatorConfig(t *testing.T) {
	t.Parallel()
	if _, err := NewOAuthValidator(OAuthConfig{}); err == nil {
		t.Fatal("no keys accepted")
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	_ = os.WriteFile(empty, []byte("nothing"), 0o600)
	if _, err := NewOAuthValidator(OAuthConfig{KeyFiles: []string{empty}}); err == nil {
		t.Fatal("a PEM file without keys accepted")
	}
	if _, err := readJWKS(empty); err == nil {
		t.Fatal("a JWKS file that is not JSON accepted")
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	writeJWKS(t, bad, testNow, map[string]string{"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"})
	if _, err := readJWKS(bad); err == nil {
		t.Fatal("an EC key off the curve accepted")
	}
}

// Unsigned tokens (alg none) pass only with AllowUnsecured, and are still checked for exp; signed
// ones are checked against the keys either way.
func TestOAuthUnsecuredTokens(t *testing.T) {
	t.Parallel()
	unsigned := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	key := testRSAKey(t)
	pemFile := writePublicPEM(t, &key.PublicKey)
	strict := newValidator(t, OAuthConfig{KeyFiles: []string{pemFile}})
	if _, _, err := strict.Validate(unsigned(claims("admin", time.Hour))); err == nil {
		t.Fatal("an unsigned token accepted without AllowUnsecured")
	}
	loose := newValidator(t, OAuthConfig{KeyFiles: []string{pemFile}, AllowUnsecured: true})
	if name, _, err := loose.Validate(unsigned(claims("admin", time.Hour))); err != nil || name != "admin" {
		t.Fatalf("unsigned token: %q, %v", name, err)
	}
	if _, _, err := loose.Validate(unsigned(claims("admin", -time.Hour))); err == nil {
		t.Fatal("an expired unsigned token accepted")
	}
	if _, _, err := loose.Validate(unsigned(jwt.MapClaims{"sub": "admin"})); err == nil {
		t.Fatal("an unsigned token without exp accepted")
	}
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, _, err := loose.Validate(sign(t, jwt.SigningMethodRS256, other, "", claims("admin", time.Hour))); err == nil {
		t.Fatal("a token signed by an unknown key accepted")
	}
	if name, _, err := loose.Validate(sign(t, jwt.SigningMethodRS256, key, "", claims("svc", time.Hour))); err != nil || name != "svc" {
		t.Fatalf("signed token: %q, %v", name, err)
	}
	if _, err := NewOAuthValidator(OAuthConfig{AllowUnsecured: true}); err != nil {
		t.Fatalf("AllowUnsecured without keys: %v", err)
	}
}
