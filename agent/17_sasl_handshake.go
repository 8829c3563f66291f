package agent

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// SaslHandshake: v0-1
//
// Chooses the SASL mechanism of the exchange that follows; on a connection already authenticated it
// begins a re-authentication (KIP-368). Answered before the connection's next frame is read, since
// after a v0 handshake that frame is a bare SASL token rather than a request. On a listener
// without SASL, or in the middle of an exchange, it is ILLEGAL_SASL_STATE; a mechanism not enabled
// is UNSUPPORTED_SASL_MECHANISM with the enabled ones. Either failure closes the connection at its
// next request, as in Kafka.
//
// Version notes:
// * v1: the exchange goes on in SaslAuthenticate requests (v0: bare tokens)

func (a *Agent) handleSaslHandshake(c client, req *kmsg.SASLHandshakeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.SASLHandshakeResponse)
	cs := c.sec
	if cs == nil || !cs.l.cfg.sasl() || a.sec.sasl == nil {
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp
	}
	resp.SupportedMechanisms = a.sec.sasl.Mechanisms()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.session != nil {
		cs.failed = true
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp
	}
	sess, err := a.sec.sasl.Start(req.Mechanism)
	if err != nil {
		cs.failed = true
		resp.ErrorCode = saslCode(err)
		a.log.Info("SASL handshake refused", "client", c.remote, "mechanism", req.Mechanism, "error", err)
		return resp
	}
	if cs.authenticated && req.Mechanism != cs.identity.Mechanism {
		// KIP-368: a re-authentication keeps the mechanism.
		cs.failed = true
		resp.ErrorCode = kerr.IllegalSaslState.Code
		return resp
	}
	cs.session, cs.handshakeV, cs.mech, cs.reauth = sess, req.Version, req.Mechanism, cs.authenticated
	cs.lastServerMsg = nil
	cs.rawNext = req.Version == 0
	return resp
}
