package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// scramFinal is a client-final-message for SCRAM-SHA-512 with password over the exchange so far,
// with nonce in r= (as the client chose to send it).
func scramFinal(t *testing.T, pass, clientFirstBare, serverFirst, nonce string) string {
	t.Helper()
	var salt []byte
	iters := 0
	for _, f := range strings.Split(serverFirst, ",") {
		switch {
		case strings.HasPrefix(f, "s="):
			salt, _ = base64.StdEncoding.DecodeString(f[2:])
		case strings.HasPrefix(f, "i="):
			for _, c := range f[2:] {
				iters = iters*10 + int(c-'0')
			}
		}
	}
	salted, err := pbkdf2.Key(sha512.New, pass, salt, iters, sha512.Size)
	if err != nil {
		t.Fatal(err)
	}
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(sha512.New, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha512.Sum512(clientKey)
	withoutProof := "c=biws,r=" + nonce
	sig := mac(stored[:], clientFirstBare+","+serverFirst+","+withoutProof)
	for i := range clientKey {
		clientKey[i] ^= sig[i]
	}
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(clientKey)
}

// librdkafka before 2.6.1 sends its own nonce, then the server's (which begins with its own), in
// client-final-message. That form is accepted, as Kafka 3.8.1 to 3.9 accept it; any other nonce is
// refused even with the right proof over it.
func TestSCRAMLibrdkafkaNonce(t *testing.T) {
	t.Parallel()
	creds := fakeCreds{}
	creds.add(t, "alice", "pw", MechanismScramSHA512)
	s := newSASL(t, SASLConfig{Credentials: creds})
	const cnonce = "fyko+d2lbbFgONR=p=Rj"
	for _, tc := range []struct {
		name  string
		nonce func(server string) string
		ok    bool
	}{
		{"rfc5802", func(server string) string { return server }, true},
		{"librdkafka", func(server string) string { return cnonce + server }, true},
		{"client-only", func(string) string { return cnonce }, false},
		{"other-prefix", func(server string) string { return "x" + server }, false},
		{"truncated", func(server string) string { return server[:len(server)-1] }, false},
	} {
		ss, _ := s.Start(MechanismScramSHA512)
		bare := "n=alice,r=" + cnonce
		resp, _, err := ss.Step([]byte("n,," + bare))
		if err != nil {
			t.Fatal(err)
		}
		server := strings.TrimPrefix(strings.Split(string(resp), ",")[0], "r=")
		out, done, err := ss.Step([]byte(scramFinal(t, "pw", bare, string(resp), tc.nonce(server))))
		switch {
		case tc.ok && (err != nil || !done || !strings.HasPrefix(string(out), "v=")):
			t.Errorf("%s: %q %v %v, want authenticated", tc.name, out, done, err)
		case tc.ok && ss.Identity().Principal != User("alice"):
			t.Errorf("%s: principal %v", tc.name, ss.Identity().Principal)
		case !tc.ok && !errors.Is(err, ErrAuthenticationFailed):
			t.Errorf("%s: %q %v %v, want ErrAuthenticationFailed", tc.name, out, done, err)
		}
	}
	// The server signature is the one RFC 5802 has the client check (franz-go checks it:
	// TestSCRAMWithFranzGo); a wrong password fails with the librdkafka form too.
	ss, _ := s.Start(MechanismScramSHA512)
	bare := "n=alice,r=" + cnonce
	resp, _, _ := ss.Step([]byte("n,," + bare))
	server := strings.TrimPrefix(strings.Split(string(resp), ",")[0], "r=")
	if _, _, err := ss.Step([]byte(scramFinal(t, "wrong", bare, string(resp), cnonce+server))); !errors.Is(err, ErrAuthenticationFailed) {
		t.Errorf("wrong password, librdkafka form: %v", err)
	}
}
