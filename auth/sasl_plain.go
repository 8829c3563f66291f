package auth

import (
	"bytes"
	"strings"
	"unicode/utf8"
)

// plainSession checks one PLAIN message (RFC 4616: authzid NUL authcid NUL passwd) against the
// user's stored SCRAM credential: SCRAM-SHA-256's, or SCRAM-SHA-512's when it has only that.
type plainSession struct {
	creds CredentialSource
	done  bool
	id    Identity
}

func (ps *plainSession) Step(msg []byte) ([]byte, bool, error) {
	if ps.done {
		return nil, false, ErrIllegalState
	}
	ps.done = true
	parts := bytes.Split(msg, []byte{0})
	if len(parts) != 3 {
		return nil, false, failf(MechanismPlain, "", "want authzid NUL user NUL password")
	}
	authz, user, pass := string(parts[0]), string(parts[1]), string(parts[2])
	switch {
	case user == "" || pass == "" || !utf8.ValidString(user):
		return nil, false, failf(MechanismPlain, "", "empty or invalid user name or password")
	case authz != "" && authz != user:
		return nil, false, failf(MechanismPlain, user, "authorization id %q differs from the user name", authz)
	}
	mech := MechanismScramSHA256
	cred, ok := ps.creds.ScramCredential(user, mech)
	if !ok {
		mech = MechanismScramSHA512
		cred, ok = ps.creds.ScramCredential(user, mech)
	}
	if !ok {
		// Spend what a known user costs, so that timing does not tell which users exist.
		mech, cred = MechanismScramSHA256, decoyCredential(MechanismScramSHA256, user)
	}
	if !verifyPassword(mech, pass, cred) || !ok {
		return nil, false, failf(MechanismPlain, user, "invalid credentials")
	}
	ps.id = Identity{Principal: User(user), Mechanism: MechanismPlain}
	return nil, true, nil
}

func (ps *plainSession) Identity() Identity { return ps.id }

// CheckPassword tells whether password is user's, against the stored SCRAM credential as PLAIN
// checks it (one PBKDF2; an unknown user costs the same), for logins other than Kafka's: the HTTP
// port's basic authentication. The error wraps ErrAuthenticationFailed and names no secret.
func CheckPassword(creds CredentialSource, user, password string) (Principal, error) {
	if strings.ContainsRune(user, 0) || strings.ContainsRune(password, 0) {
		return Principal{}, failf("basic", "", "user name or password with NUL")
	}
	ps := &plainSession{creds: creds}
	if _, _, err := ps.Step([]byte("\x00" + user + "\x00" + password)); err != nil {
		return Principal{}, err
	}
	return ps.id.Principal, nil
}
