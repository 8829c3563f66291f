package auth

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"

	"github.com/xdg-go/scram"

	"github.com/streamhouse/streamhouse/coord"
)

// Kafka's bounds on SCRAM iterations (ScramMechanism's minIterations; kafka-configs refuses more
// than 16384), and the default of `streamhouse user add`.
const (
	MinScramIterations     = 4096
	MaxScramIterations     = 16384
	DefaultScramIterations = 4096
	scramSaltLen           = 32
)

// scramHash is a mechanism's hash function, and its output size: a proof's length.
func scramHash(mechanism string) (scram.HashGeneratorFcn, int, error) {
	switch mechanism {
	case MechanismScramSHA256:
		return scram.SHA256, 32, nil
	case MechanismScramSHA512:
		return scram.SHA512, 64, nil
	}
	return nil, 0, fmt.Errorf("auth: not a SCRAM mechanism: %q", mechanism)
}

// NewScramCredential salts and hashes a password as RFC 5802 has a server store it: what etcd
// keeps instead of the password. Like Kafka and franz-go, the password is used as its UTF-8 bytes,
// without SASLprep.
func NewScramCredential(mechanism, password string, iterations int) (coord.ScramCredential, error) {
	if password == "" {
		return coord.ScramCredential{}, fmt.Errorf("auth: empty password")
	}
	if iterations < MinScramIterations || iterations > MaxScramIterations {
		return coord.ScramCredential{}, fmt.Errorf("auth: %d iterations: want %d to %d", iterations, MinScramIterations, MaxScramIterations)
	}
	salt := make([]byte, scramSaltLen)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go ≥ 1.24)
	return deriveScram(mechanism, password, salt, iterations)
}

func deriveScram(mechanism, password string, salt []byte, iterations int) (coord.ScramCredential, error) {
	h, _, err := scramHash(mechanism)
	if err != nil {
		return coord.ScramCredential{}, err
	}
	cl, err := h.NewClientUnprepped("", password, "")
	if err != nil {
		return coord.ScramCredential{}, err
	}
	sc := cl.GetStoredCredentials(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	return coord.ScramCredential{Salt: salt, Iterations: iterations, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// verifyPassword tells whether password is the one cred was derived from; the keys are compared in
// constant time.
func verifyPassword(mechanism, password string, cred coord.ScramCredential) bool {
	if cred.Iterations < 1 || cred.Iterations > MaxScramIterations {
		return false // not a credential this package wrote: do not let etcd set the CPU cost
	}
	got, err := deriveScram(mechanism, password, cred.Salt, cred.Iterations)
	return err == nil && hmac.Equal(got.StoredKey, cred.StoredKey)
}

// decoyKey makes the credentials of users that do not exist: a per-process secret.
var decoyKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return k
}()

// decoyCredential is what an unknown user is answered with: a salt stable per name (asking twice
// tells nothing) and keys no password derives, so that only the proof step fails, as for a wrong
// password, and the first answer does not tell which users exist.
func decoyCredential(mechanism, user string) coord.ScramCredential {
	mac := func(label string, n int) []byte {
		m := hmac.New(sha256.New, decoyKey)
		m.Write([]byte(label + "\x00" + mechanism + "\x00" + user))
		out := m.Sum(nil)
		for len(out) < n {
			out = append(out, out...)
		}
		return out[:n]
	}
	_, size, _ := scramHash(mechanism)
	if size == 0 {
		size = 32
	}
	return coord.ScramCredential{Salt: mac("salt", scramSaltLen), Iterations: DefaultScramIterations,
		StoredKey: mac("stored", size), ServerKey: mac("server", size)}
}

// ScramCredentialFromSalted is the stored credential of a salted password, as Kafka's
// AlterUserScramCredentials carries it (the client salts; the password never travels): StoredKey
// = H(HMAC(SaltedPassword, "Client Key")), ServerKey = HMAC(SaltedPassword, "Server Key"). The
// salted password must be as long as the mechanism's hash, the iterations within Kafka's bounds.
func ScramCredentialFromSalted(mechanism string, salt, salted []byte, iterations int) (coord.ScramCredential, error) {
	var h func() hash.Hash
	switch mechanism {
	case MechanismScramSHA256:
		h = sha256.New
	case MechanismScramSHA512:
		h = sha512.New
	default:
		return coord.ScramCredential{}, fmt.Errorf("auth: unknown SCRAM mechanism %q", mechanism)
	}
	switch {
	case iterations < MinScramIterations || iterations > MaxScramIterations:
		return coord.ScramCredential{}, fmt.Errorf("auth: %d iterations: want %d to %d", iterations, MinScramIterations, MaxScramIterations)
	case len(salt) == 0:
		return coord.ScramCredential{}, errors.New("auth: empty salt")
	case len(salted) != h().Size():
		return coord.ScramCredential{}, fmt.Errorf("auth: salted password of %d bytes for %s (want %d)", len(salted), mechanism, h().Size())
	}
	mac := func(msg string) []byte {
		m := hmac.New(h, salted)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	d := h()
	d.Write(mac("Client Key"))
	return coord.ScramCredential{Salt: bytes.Clone(salt), Iterations: iterations, StoredKey: d.Sum(nil), ServerKey: mac("Server Key")}, nil
}
