package auth

// oauthErrorStatus is the server's message for a token it refuses (RFC 7628, section 3.2.2), as
// Kafka sends it; the client answers %x01 and the exchange then fails.
const oauthErrorStatus = `{"status":"invalid_token"}`

// oauthSession is one OAUTHBEARER exchange.
type oauthSession struct {
	v      *OAuthValidator
	step   int
	failed error
	id     Identity
}

func (o *oauthSession) Step(msg []byte) ([]byte, bool, error) {
	o.step++
	switch {
	case o.step == 1:
		return o.initial(string(msg))
	case o.step == 2 && o.failed != nil:
		// Whatever the client answers (%x01 by the RFC), the exchange has failed.
		return nil, false, o.failed
	}
	return nil, false, ErrIllegalState
}

func (o *oauthSession) initial(msg string) ([]byte, bool, error) {
	m, err := parseOAuthInitial(msg)
	if err != nil {
		o.step = 2
		return nil, false, failf(MechanismOAuthBearer, "", "%v", err)
	}
	name, exp, err := o.v.Validate(m.token)
	if err == nil && m.authzID != "" && m.authzID != name {
		err = errAuthzMismatch
	}
	if err != nil {
		o.failed = failf(MechanismOAuthBearer, name, "invalid token: %v", err)
		return []byte(oauthErrorStatus), false, nil
	}
	o.id = Identity{Principal: User(name), Mechanism: MechanismOAuthBearer, Expiry: exp}
	return nil, true, nil
}

func (o *oauthSession) Identity() Identity { return o.id }
