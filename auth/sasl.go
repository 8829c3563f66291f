package auth

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/coord"
)

// SASL mechanism names, as clients send them in SaslHandshake.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = coord.ScramSHA256
	MechanismScramSHA512 = coord.ScramSHA512
	MechanismOAuthBearer = "OAUTHBEARER"
)

// AllMechanisms lists the mechanisms this package serves.
var AllMechanisms = []string{MechanismPlain, MechanismScramSHA256, MechanismScramSHA512, MechanismOAuthBearer}

// Conditions the Kafka path acts on.
var (
	// ErrAuthenticationFailed: the client did not prove who it is, or broke the mechanism's
	// protocol; Kafka answers SASL_AUTHENTICATION_FAILED either way. Errors wrapping it carry the
	// user name (never a secret) for the log.
	ErrAuthenticationFailed = errors.New("auth: authentication failed")
	// ErrUnsupportedMechanism: a mechanism this listener does not enable (UNSUPPORTED_SASL_MECHANISM).
	ErrUnsupportedMechanism = errors.New("auth: unsupported SASL mechanism")
	// ErrIllegalState: a step after the session ended (ILLEGAL_SASL_STATE).
	ErrIllegalState = errors.New("auth: SASL session already ended")
)

// failf is an authentication failure with its reason; user may be empty when not known yet.
func failf(mech, user, format string, args ...any) error {
	who := ""
	if user != "" {
		who = " of user " + fmt.Sprintf("%q", user)
	}
	return fmt.Errorf("%w: %s%s: %s", ErrAuthenticationFailed, mech, who, fmt.Sprintf(format, args...))
}

// Identity is who a session authenticated.
type Identity struct {
	Principal Principal
	Mechanism string
	// Expiry is when the credential stops being valid (an OAUTHBEARER token's exp); zero for
	// passwords, which do not expire.
	Expiry time.Time
}

// SessionLifetime is what SaslAuthenticate v1+ announces (KIP-368): the sooner of the credential's
// expiry and maxReauth (Kafka's connections.max.reauth.ms; 0: none), 0 when neither bounds it. A
// lifetime would be 0 only for a token expiring now, which Validate refuses; it is at least 1ms.
func (id Identity) SessionLifetime(now time.Time, maxReauth time.Duration) time.Duration {
	d := maxReauth
	if !id.Expiry.IsZero() {
		left := max(id.Expiry.Sub(now), time.Millisecond)
		if d <= 0 || left < d {
			d = left
		}
	}
	return max(d, 0)
}

// CheckReauth refuses a re-authentication (KIP-368) that changes the connection's principal or
// mechanism, as Kafka does.
func CheckReauth(prev, next Identity) error {
	if prev.Principal != next.Principal || prev.Mechanism != next.Mechanism {
		return fmt.Errorf("%w: re-authentication as %s with %s on a connection of %s with %s",
			ErrAuthenticationFailed, next.Principal, next.Mechanism, prev.Principal, prev.Mechanism)
	}
	return nil
}

// Session is one authentication exchange. Step takes the client's next message and returns the
// server's answer; done reports that the client is authenticated (then Identity is valid), an error
// that it is not (the answer, if any, is still to be sent: OAUTHBEARER's error message). Not safe
// for concurrent use: a connection authenticates one message at a time.
type Session interface {
	Step(clientMessage []byte) (serverMessage []byte, done bool, err error)
	Identity() Identity
}

// CredentialSource is where SCRAM credentials are looked up: coord's watched view (*coord.Cache).
type CredentialSource interface {
	ScramCredential(user, mechanism string) (coord.ScramCredential, bool)
}

// SASLConfig configures a SASL server.
type SASLConfig struct {
	Mechanisms  []string         // enabled mechanisms; default: those the config below can serve
	Credentials CredentialSource // required for PLAIN and SCRAM
	OAuth       *OAuthValidator  // required for OAUTHBEARER
	Logger      hclog.Logger
	Registerer  prometheus.Registerer
}

// SASL starts authentication sessions of its enabled mechanisms.
type SASL struct {
	mechs   []string
	creds   CredentialSource
	oauth   *OAuthValidator
	scram   map[string]*scramServer
	log     hclog.Logger
	metrics *saslMetrics
}

// NewSASL validates cfg; it starts nothing.
func NewSASL(cfg SASLConfig) (*SASL, error) {
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if len(cfg.Mechanisms) == 0 {
		if cfg.Credentials != nil {
			cfg.Mechanisms = append(cfg.Mechanisms, MechanismPlain, MechanismScramSHA256, MechanismScramSHA512)
		}
		if cfg.OAuth != nil {
			cfg.Mechanisms = append(cfg.Mechanisms, MechanismOAuthBearer)
		}
	}
	s := &SASL{creds: cfg.Credentials, oauth: cfg.OAuth, scram: map[string]*scramServer{}, log: cfg.Logger.Named("sasl")}
	for _, m := range cfg.Mechanisms {
		if err := s.enable(m); err != nil {
			return nil, err
		}
	}
	if len(s.mechs) == 0 {
		return nil, errors.New("auth: SASL without a mechanism (give credentials or an OAuth validator)")
	}
	s.metrics = newSASLMetrics(cfg.Registerer, s.mechs)
	return s, nil
}

func (s *SASL) enable(m string) error {
	switch {
	case slices.Contains(s.mechs, m):
		return nil
	case (m == MechanismPlain || m == MechanismScramSHA256 || m == MechanismScramSHA512) && s.creds == nil:
		return fmt.Errorf("auth: SASL mechanism %s needs a credential source", m)
	case m == MechanismOAuthBearer && s.oauth == nil:
		return fmt.Errorf("auth: SASL mechanism %s needs an OAuth validator", m)
	case m == MechanismScramSHA256 || m == MechanismScramSHA512:
		srv, err := newScramServer(m, s.creds)
		if err != nil {
			return err
		}
		s.scram[m] = srv
	case m != MechanismPlain && m != MechanismOAuthBearer:
		return fmt.Errorf("auth: unknown SASL mechanism %q (want one of %v)", m, AllMechanisms)
	}
	s.mechs = append(s.mechs, m)
	return nil
}

// Mechanisms lists the enabled mechanisms, for SaslHandshake's answer.
func (s *SASL) Mechanisms() []string { return slices.Clone(s.mechs) }

// Start begins a session of mechanism.
func (s *SASL) Start(mechanism string) (Session, error) {
	if !slices.Contains(s.mechs, mechanism) {
		return nil, fmt.Errorf("%w: %q (enabled: %v)", ErrUnsupportedMechanism, mechanism, s.mechs)
	}
	var inner Session
	switch mechanism {
	case MechanismPlain:
		inner = &plainSession{creds: s.creds}
	case MechanismOAuthBearer:
		inner = &oauthSession{v: s.oauth}
	default:
		inner = s.scram[mechanism].start()
	}
	return &countedSession{Session: inner, mech: mechanism, m: s.metrics}, nil
}

// countedSession counts a session's outcome once.
type countedSession struct {
	Session
	mech    string
	m       *saslMetrics
	counted bool
}

func (c *countedSession) Step(msg []byte) ([]byte, bool, error) {
	resp, done, err := c.Session.Step(msg)
	if !c.counted && (done || err != nil) {
		c.counted = true
		c.m.count(c.mech, err == nil)
	}
	return resp, done, err
}

type saslMetrics struct {
	results map[string][2]prometheus.Counter // [failed, ok]
}

func newSASLMetrics(reg prometheus.Registerer, mechs []string) *saslMetrics {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_sasl_authentications_total",
		Help: "SASL authentications that ended, by mechanism and result (ok, failed).",
	}, []string{"mechanism", "result"})
	m := &saslMetrics{results: map[string][2]prometheus.Counter{}}
	for _, mech := range mechs {
		m.results[mech] = [2]prometheus.Counter{vec.WithLabelValues(mech, "failed"), vec.WithLabelValues(mech, "ok")}
	}
	register(reg, vec)
	return m
}

func (m *saslMetrics) count(mech string, ok bool) {
	if ok {
		m.results[mech][1].Inc()
	} else {
		m.results[mech][0].Inc()
	}
}
