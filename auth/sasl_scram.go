package auth

import (
	"github.com/xdg-go/scram"
)

// scramServer serves one SCRAM mechanism with xdg-go/scram, credentials from the view.
type scramServer struct {
	mech     string
	proofLen int
	srv      *scram.Server
}

func newScramServer(mech string, creds CredentialSource) (*scramServer, error) {
	h, size, err := scramHash(mech)
	if err != nil {
		return nil, err
	}
	srv, err := h.NewServer(func(name string) (scram.StoredCredentials, error) {
		// name is the client's saslname as sent; parseClientFirst has checked it decodes.
		user, _ := decodeSaslName(name, true)
		c, ok := creds.ScramCredential(user, mech)
		if !ok {
			c = decoyCredential(mech, user)
		}
		return scram.StoredCredentials{KeyFactors: scram.KeyFactors{Salt: string(c.Salt), Iters: c.Iterations},
			StoredKey: c.StoredKey, ServerKey: c.ServerKey}, nil
	})
	if err != nil {
		return nil, err
	}
	return &scramServer{mech: mech, proofLen: size, srv: srv}, nil
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
	return []byte(resp), false, nil
}

func (ss *scramSession) final(msg string) ([]byte, bool, error) {
	if err := parseClientFinal(msg, ss.s.proofLen); err != nil {
		return nil, false, failf(ss.s.mech, ss.user, "%v", err)
	}
	resp, err := ss.conv.Step(msg)
	if err != nil || !ss.conv.Valid() {
		return nil, false, failf(ss.s.mech, ss.user, "invalid credentials")
	}
	ss.id = Identity{Principal: User(ss.user), Mechanism: ss.s.mech}
	return []byte(resp), true, nil
}

func (ss *scramSession) Identity() Identity { return ss.id }
