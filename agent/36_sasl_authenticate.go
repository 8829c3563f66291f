package agent

import (
	"context"
	"encoding/binary"
	"errors"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
)

// SaslAuthenticate: v0-2
//
// One step of the SASL exchange a SaslHandshake v1 began. A failure answers
// SASL_AUTHENTICATION_FAILED (the log names the user, never a secret) and closes the connection at
// its next request. A success sets the connection's principal; on a re-authentication (KIP-368)
// the principal must not change.
//
// Version notes:
// * v1: SessionLifetimeMillis (KIP-368): the sooner of the credential's expiry and
//   connections.max.reauth.ms; past it the connection takes only a re-authentication
// * v2: flexible versions

func (a *Agent) handleSaslAuthenticate(c client, req *kmsg.SASLAuthenticateRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLAuthenticateResponse)
	cs := c.sec
	if cs == nil || !cs.l.cfg.sasl() || a.sec.sasl == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp
	}
	out, lifetime, err := a.saslStep(c, cs, req.SASLAuthBytes, true)
	if err != nil {
		resp.ErrorCode = saslCode(err)
		msg := saslErrorMessage(err, out)
		resp.ErrorMessage = &msg
		return resp
	}
	resp.SASLAuthBytes = out
	resp.SessionLifetimeMillis = lifetime.Milliseconds()
	return resp
}

// handleSASL answers SaslHandshake and SaslAuthenticate.
func (a *Agent) handleSASL(c client, req kmsg.Request) kmsg.Response {
	switch req := req.(type) {
	case *kmsg.SASLHandshakeRequest:
		return a.handleSaslHandshake(c, req)
	case *kmsg.SASLAuthenticateRequest:
		return a.handleSaslAuthenticate(c, req)
	}
	return nil
}

// saslStep drives a connection's SASL exchange by one client message. It returns the server's
// message and, once the exchange is done, the session lifetime; an error ends the exchange
// (authentication failed; the connection is closed at its next request). The server message of a
// failure is kept for the error message (OAUTHBEARER's status).
func (a *Agent) saslStep(c client, cs *connSec, msg []byte, v1 bool) ([]byte, time.Duration, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.session == nil || cs.handshakeV == 0 && v1 {
		cs.failed = true
		return nil, 0, auth.ErrIllegalState
	}
	out, done, err := cs.session.Step(msg)
	if err == nil && !done {
		cs.lastServerMsg = out
		return out, 0, nil
	}
	id := cs.session.Identity()
	cs.session = nil
	if err == nil && cs.reauth {
		err = auth.CheckReauth(cs.identity, id)
	}
	if err != nil {
		cs.failed = true
		a.log.Warn("SASL authentication failed", "client", c.remote, "listener", cs.l.cfg.Name, "error", err)
		if cs.mech == auth.MechanismOAuthBearer {
			return cs.lastServerMsg, 0, err // {"status":"invalid_token"}: RFC 7628's error, not a secret
		}
		return nil, 0, err
	}
	now := time.Now()
	lifetime := id.SessionLifetime(now, a.cfg.Security.ConnectionsMaxReauth)
	cs.identity, cs.principal, cs.authenticated = id, id.Principal, true
	cs.expires = time.Time{}
	if lifetime > 0 {
		cs.expires = now.Add(lifetime)
	}
	a.log.Debug("SASL authenticated", "client", c.remote, "principal", id.Principal.String(), "mechanism", id.Mechanism,
		"reauthentication", cs.reauth, "lifetime", lifetime)
	return out, lifetime, nil
}

// saslCode is the Kafka error of a SASL failure.
func saslCode(err error) int16 {
	switch {
	case errors.Is(err, auth.ErrUnsupportedMechanism):
		return kerr.UnsupportedSaslMechanism.Code
	case errors.Is(err, auth.ErrIllegalState):
		return kerr.IllegalSaslState.Code
	default:
		return kerr.SaslAuthenticationFailed.Code
	}
}

// saslErrorMessage is what a failed SaslAuthenticate tells the client: Kafka's words, with
// OAUTHBEARER's error status; never which part of the credential was wrong.
func saslErrorMessage(err error, serverMsg []byte) string {
	switch {
	case errors.Is(err, auth.ErrIllegalState):
		return "unexpected SaslAuthenticate request"
	case len(serverMsg) > 0:
		return "Authentication failed: " + string(serverMsg)
	}
	return "Authentication failed: invalid credentials"
}

// rawSASL reads and answers one bare SASL token, after a v0 SaslHandshake, in order with the
// connection's other answers; false ends the connection (a failure too: a bare token exchange has
// no way to tell the client why, so Kafka closes it).
func (a *Agent) rawSASL(ctx context.Context, fr *frameReader, cs *connSec, queue chan<- *inflight, log hclog.Logger) bool {
	fm, err := fr.next(ctx)
	if err != nil {
		if ctx.Err() == nil {
			log.Debug("closing connection during SASL", "error", err)
		}
		return false
	}
	a.budget.release(fm.charge)
	out, _, err := a.saslStep(client{remote: fr.nc.RemoteAddr().String()}, cs, fm.body, false)
	if err != nil {
		return false
	}
	cs.mu.Lock()
	cs.rawNext = cs.session != nil // more tokens until the exchange is done
	cs.mu.Unlock()
	f := &inflight{done: make(chan struct{}), raw: append([]byte{}, out...)}
	close(f.done)
	select {
	case queue <- f:
		fr.act.pending.Add(1)
		return true
	case <-ctx.Done():
		return false
	}
}

// appendRawToken appends a bare SASL token as Kafka frames it: its length, then its bytes.
func appendRawToken(dst, token []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(token)))
	return append(dst, token...)
}
