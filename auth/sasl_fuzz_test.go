package auth

import (
	"errors"
	"strings"
	"testing"
)

var saslEscaper = strings.NewReplacer("=", "=3D", ",", "=2C")

// FuzzSCRAMSession drives a whole server session with a client-first and a client-final message
// from the network: nothing may panic (xdg-go/scram v1.1.2 does, on input our decoders refuse), and
// every outcome is an answer or an authentication failure.
func FuzzSCRAMSession(f *testing.F) {
	creds := fakeCreds{}
	creds.add(f, "alice", "pw", MechanismScramSHA256, MechanismScramSHA512)
	s := newSASL(f, SASLConfig{Credentials: creds})
	f.Add("n,,n=alice,r=abc", "c=biws,r=abc,p=AAAA", true)
	f.Add(",,n=alice,r=abc", "", false)
	f.Add("y,a=alice,n=alice,r=abc,x=1", "c=eSxhPWFsaWNlLA==,r=abcXYZ,x=y,p="+strings.Repeat("A", 88), false)
	f.Add("n,,n=al=2Cice,r=abc", "c=biws,r=abc,p=", true)
	f.Fuzz(func(t *testing.T, first, final string, sha256 bool) {
		mech := MechanismScramSHA512
		if sha256 {
			mech = MechanismScramSHA256
		}
		ss, _ := s.Start(mech)
		resp, done, err := ss.Step([]byte(first))
		if done || (err != nil && !errors.Is(err, ErrAuthenticationFailed)) {
			t.Fatalf("first %q: done %v err %v", first, done, err)
		}
		if err != nil {
			return
		}
		if !strings.HasPrefix(string(resp), "r=") {
			t.Fatalf("server-first %q", resp)
		}
		if _, _, err := ss.Step([]byte(final)); err != nil && !errors.Is(err, ErrAuthenticationFailed) {
			t.Fatalf("final %q: %v", final, err)
		}
	})
}

// FuzzParseClientFirst: what parses, written out again, parses to the same.
func FuzzParseClientFirst(f *testing.F) {
	for _, s := range []string{"n,,n=alice,r=abc", "y,a=b=3Dc,n=a=2Cb,r=x,tokenauth=true", "n,,m=x,n=a,r=b", "p=x,,n=a,r=b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, msg string) {
		m, err := parseClientFirst(msg)
		if err != nil {
			return
		}
		again := "n,"
		if m.authzID != "" {
			again += "a=" + saslEscaper.Replace(m.authzID)
		}
		again += ",n=" + saslEscaper.Replace(m.user) + ",r=" + m.nonce
		for k, v := range m.exts {
			again += "," + k + "=" + v
		}
		m2, err := parseClientFirst(again)
		if err != nil || m2.user != m.user || m2.authzID != m.authzID || m2.nonce != m.nonce || len(m2.exts) != len(m.exts) {
			t.Fatalf("%q parsed as %+v; written again %q: %+v, %v", msg, m, again, m2, err)
		}
	})
}

func FuzzParseClientFinal(f *testing.F) {
	f.Add("c=biws,r=abc,p=" + strings.Repeat("A", 43) + "=")
	f.Add("c=biws,r=abc,e=x,p=AAAA")
	f.Fuzz(func(t *testing.T, msg string) {
		if parseClientFinal(msg, 32) != nil {
			return
		}
		if !strings.HasPrefix(msg, "c=") || !strings.Contains(msg, ",p=") {
			t.Fatalf("accepted %q", msg)
		}
	})
}

// FuzzOAuthBearer drives a server session with an initial response from the network; what parses
// has a token of b64token characters only.
func FuzzOAuthBearer(f *testing.F) {
	key := testRSAKey(f)
	s := newSASL(f, SASLConfig{OAuth: newValidator(f, OAuthConfig{KeyFiles: []string{writePublicPEM(f, &key.PublicKey)}})})
	f.Add("n,,\x01auth=Bearer abc.def.ghi\x01\x01")
	f.Add("n,a=alice,\x01auth=bearer  x==\x01host=h\x01port=9092\x01\x01")
	f.Add("y,,\x01\x01")
	f.Fuzz(func(t *testing.T, msg string) {
		if m, err := parseOAuthInitial(msg); err == nil {
			if _, err := bearerToken("Bearer " + m.token); err != nil {
				t.Fatalf("%q: token %q does not parse again", msg, m.token)
			}
		}
		ss, _ := s.Start(MechanismOAuthBearer)
		resp, done, err := ss.Step([]byte(msg))
		if err != nil && !errors.Is(err, ErrAuthenticationFailed) {
			t.Fatalf("%q: %v", msg, err)
		}
		if done {
			t.Fatalf("%q authenticated without a signed token", msg)
		}
		if err == nil && string(resp) != oauthErrorStatus {
			t.Fatalf("%q: answer %q", msg, resp)
		}
	})
}

func FuzzPlain(f *testing.F) {
	creds := fakeCreds{}
	creds.add(f, "alice", "pw", MechanismScramSHA256)
	s := newSASL(f, SASLConfig{Credentials: creds})
	f.Add([]byte("\x00alice\x00pw"))
	f.Add([]byte("alice\x00alice\x00x"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		ss, _ := s.Start(MechanismPlain)
		_, done, err := ss.Step(msg)
		if done != (err == nil) || (err != nil && !errors.Is(err, ErrAuthenticationFailed)) {
			t.Fatalf("%q: done %v err %v", msg, done, err)
		}
		if done && ss.Identity().Principal != User("alice") {
			t.Fatalf("%q authenticated as %v", msg, ss.Identity())
		}
	})
}
