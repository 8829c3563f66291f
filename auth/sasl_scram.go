package auth

import (
	"crypto/hmac"
	"crypto/subtle"
	"encoding/base64"
	"strings"

	"github.com/xdg-go/scram"
)

// scramServer serves one SCRAM mechanism with xdg-go/scram, credentials from the view; only the
// client-final message of librdkafka before 2.6.1, which holds its own nonce twice, is checked here
// (see final).
type scramServer struct {
	mech     string
	proofLen int
	hash     scram.HashGeneratorFcn
	creds    CredentialSource
	srv      *scram.Server
}

// stored is user's credential, or a decoy for a user without one (the exchange then fails at the
// proof, as a wrong password does, and tells nothing of who exists).
func (s *scramServer) stored(user string) scram.StoredCredentials {
	c, ok := s.creds.ScramCredential(user, s.mech)
	if !ok {
		c = decoyCredential(s.mech, user)
	}
	return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
		StoredKey: c.StoredKey, ServerKey: c.ServerKey}
}

func newScramServer(mech string, creds CredentialSource) (*scramServer, error) {
	h, size, err := scramHash(mech)
	if err != nil {
		return nil, err
	}
	s := &scramServer{mech: mech, proofLen: size, hash: h, creds: creds}
	s.srv, err = h.NewServer(func(name string) (scram.StoredCredentials, error) {
		// name is the client's saslname as sent; parseClientFirst has checked it decodes.
		user, _ := decodeSaslName(name, true)
		return s.stored(user), nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *scramServer) start() *scramSession {
	return &scramSession{s: s, conv: s.srv.NewConversation()}
}

// scramSession is one SCRAM exchange: client-first, server-first, client-final, server-final.
type scramSession struct {
	s    *scramServer
	conv *scram.ServerConversation
	step int
	user string
	id   Identity

	// Of the first exchange: the client's gs2 header and client-first-message-bare, its nonce, the
	// server-first-message and the nonce in it (the client's and the server's).
	gs2, bare, cnonce, serverFirst, nonce string
}

func (ss *scramSession) Step(msg []byte) ([]byte, bool, error) {
	ss.step++
	switch ss.step {
	case 1:
		return ss.first(string(msg))
	case 2:
		return ss.final(string(msg))
	}
	return nil, false, ErrIllegalState
}

func (ss *scramSession) first(msg string) ([]byte, bool, error) {
	f, err := parseClientFirst(msg)
	if err != nil {
		ss.step = 2
		return nil, false, failf(ss.s.mech, "", "%v", err)
	}
	ss.user = f.user
	switch {
	case f.authzID != "" && f.authzID != f.user:
		ss.step = 2
		return nil, false, failf(ss.s.mech, f.user, "authorization id %q differs from the user name", f.authzID)
	case f.exts["tokenauth"] != "":
		ss.step = 2
		return nil, false, failf(ss.s.mech, f.user, "delegation tokens are not supported")
	}
	resp, err := ss.conv.Step(msg)
	if err != nil {
		ss.step = 2
		return nil, false, failf(ss.s.mech, f.user, "%v", err)
	}
	// parseClientFirst has checked the header's two fields.
	i := strings.IndexByte(msg, ',')
	i += strings.IndexByte(msg[i+1:], ',') + 2
	ss.gs2, ss.bare, ss.cnonce, ss.serverFirst = msg[:i], msg[i:], f.nonce, resp
	ss.nonce, _, _ = strings.Cut(strings.TrimPrefix(resp, "r="), ",")
	return []byte(resp), false, nil
}

func (ss *scramSession) final(msg string) ([]byte, bool, error) {
	if err := parseClientFinal(msg, ss.s.proofLen); err != nil {
		return nil, false, failf(ss.s.mech, ss.user, "%v", err)
	}
	cut := strings.LastIndex(msg, ",p=") // parseClientFinal has checked the proof is last
	withoutProof, p := msg[:cut], msg[cut+len(",p="):]
	fields := strings.Split(withoutProof, ",")
	nonce := strings.TrimPrefix(fields[1], "r=")
	if nonce != ss.cnonce+ss.nonce {
		// Every client that follows RFC 5802 (r= is the server-first-message's nonce, or wrong): the
		// library verifies the exchange.
		resp, err := ss.conv.Step(msg)
		if err != nil || !ss.conv.Valid() {
			return nil, false, failf(ss.s.mech, ss.user, "invalid credentials")
		}
		ss.id = Identity{Principal: User(ss.user), Mechanism: ss.s.mech}
		return []byte(resp), true, nil
	}
	// librdkafka before 2.6.1 (confluentinc/librdkafka#4895) puts its own nonce before the server's
	// nonce once more, and signs the message as sent. Kafka 3.8.1 to 3.9 accept that form (a nonce
	// ending with the server's), Kafka 4 refuses it; StreamHouse accepts it, exactly in that form, so
	// that the librdkafka of today's distributions (kcat) can use SCRAM. The library cannot verify a
	// proof over that message, so this does, with the library's hash and the standard HMAC.
	if fields[0] != "c="+base64.StdEncoding.EncodeToString([]byte(ss.gs2)) {
		return nil, false, failf(ss.s.mech, ss.user, "invalid credentials")
	}
	proof, _ := base64.StdEncoding.DecodeString(p) // parseClientFinal has checked it
	cred := ss.s.stored(ss.user)
	authMessage := []byte(ss.bare + "," + ss.serverFirst + "," + withoutProof)
	sum := func(key []byte) []byte {
		m := hmac.New(ss.s.hash, key)
		m.Write(authMessage)
		return m.Sum(nil)
	}
	clientKey := sum(cred.StoredKey)
	for i := range clientKey {
		clientKey[i] ^= proof[i]
	}
	h := ss.s.hash()
	h.Write(clientKey)
	if subtle.ConstantTimeCompare(h.Sum(nil), cred.StoredKey) != 1 {
		return nil, false, failf(ss.s.mech, ss.user, "invalid credentials")
	}
	ss.id = Identity{Principal: User(ss.user), Mechanism: ss.s.mech}
	return []byte("v=" + base64.StdEncoding.EncodeToString(sum(cred.ServerKey))), true, nil
}

func (ss *scramSession) Identity() Identity { return ss.id }
