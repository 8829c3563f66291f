package agent

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/streamhouse/streamhouse/auth"
)

// Kafka's security protocols of a listener (security.protocol).
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

var protocols = []string{ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL}

// ListenerConfig is one Kafka client listener, as Kafka's listeners, advertised.listeners and
// listener.security.protocol.map describe it.
type ListenerConfig struct {
	Name       string // listener name, unique; clients are told the addresses of the listener they use
	Protocol   string // PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
	Addr       string // listen address ("host:0" picks a free port)
	Advertised string // address given to this listener's clients; default: the bound address
}

func (l ListenerConfig) tls() bool {
	return l.Protocol == ProtocolSSL || l.Protocol == ProtocolSASLSSL
}

func (l ListenerConfig) sasl() bool {
	return l.Protocol == ProtocolSASLPlaintext || l.Protocol == ProtocolSASLSSL
}

// SecurityConfig is what secures the Kafka listeners (docs/INTERNALS.md, "Security"). Its zero
// value, with no listener other than PLAINTEXT, is today's open agent.
type SecurityConfig struct {
	// TLS of the SSL and SASL_SSL listeners: certificate and key files (re-read when they change),
	// and the CA of client certificates with Kafka's ssl.client.auth (none, requested, required).
	TLSCertFile, TLSKeyFile string
	TLSClientCAFile         string
	TLSClientAuth           string
	// InternalTLS turns mTLS on for the internal listener and the agent's connections to other
	// agents' (internal_tls.go): the certificate and key shown both ways (re-read when they
	// change), and the CA that must have signed the other agent's. Empty CAFile: no TLS.
	InternalTLSCertFile, InternalTLSKeyFile, InternalTLSCAFile string
	// PrincipalRules is Kafka's ssl.principal.mapping.rules for client certificates; empty: DEFAULT.
	PrincipalRules string

	// SASLMechanisms enabled on SASL listeners; empty: SCRAM-SHA-256 and SCRAM-SHA-512, and
	// OAUTHBEARER when OAuth keys are configured.
	SASLMechanisms []string
	// OAuth validates OAUTHBEARER tokens (KeyFiles or JWKSFile, Issuer, Audience, PrincipalClaim).
	OAuth auth.OAuthConfig

	// SuperUsers may do everything (super.users).
	SuperUsers []auth.Principal
	// AllowEveryoneIfNoACLFound is allow.everyone.if.no.acl.found.
	AllowEveryoneIfNoACLFound bool
	// Authorization checks ACLs on every request; it is on whenever a listener is not PLAINTEXT
	// (set by Validate), and may be set for PLAINTEXT-only agents (every client is User:ANONYMOUS).
	Authorization bool
	// ConnectionsMaxReauth is connections.max.reauth.ms: the longest a SASL session lasts before the
	// client must re-authenticate (KIP-368); 0: only a credential's own expiry bounds it.
	ConnectionsMaxReauth time.Duration
	// QuotaWindowNum and QuotaWindowSize are quota.window.num and quota.window.size.seconds.
	QuotaWindowNum  int
	QuotaWindowSize time.Duration

	// HTTPAuth are the ways the HTTP port authenticates (http_auth.go): "basic" (SCRAM users'
	// passwords), "tls" (client certificates of TLSClientCAFile); empty: none, as before.
	HTTPAuth []string
	// HTTPTLS serves the HTTP port over TLS with the listeners' certificate.
	HTTPTLS bool
}

// secured tells whether any listener authenticates or encrypts.
func secured(ls []ListenerConfig) bool {
	return slices.ContainsFunc(ls, func(l ListenerConfig) bool { return l.Protocol != ProtocolPlaintext })
}

// listenerConfigs are the listeners the agent binds: cfg.Listeners, or one PLAINTEXT listener on
// KafkaAddr as before listeners existed.
func (c *Config) listenerConfigs() []ListenerConfig {
	if len(c.Listeners) > 0 {
		return c.Listeners
	}
	return []ListenerConfig{{Name: ProtocolPlaintext, Protocol: ProtocolPlaintext, Addr: c.KafkaAddr, Advertised: c.AdvertisedAddr}}
}

// validateSecurity checks the listeners and what they need.
func (c *Config) validateSecurity() error {
	names := map[string]bool{}
	for _, l := range c.Listeners {
		switch {
		case l.Name == "":
			return errors.New("agent: a listener without a name")
		case names[l.Name]:
			return fmt.Errorf("agent: listener %s given twice", l.Name)
		case !slices.Contains(protocols, l.Protocol):
			return fmt.Errorf("agent: listener %s: security protocol %q (want one of %s)", l.Name, l.Protocol, strings.Join(protocols, ", "))
		}
		names[l.Name] = true
		if _, _, err := net.SplitHostPort(l.Addr); err != nil {
			return fmt.Errorf("agent: listener %s: address %q: %w", l.Name, l.Addr, err)
		}
		if l.Advertised != "" {
			if _, _, err := net.SplitHostPort(l.Advertised); err != nil {
				return fmt.Errorf("agent: listener %s: advertised address %q: %w", l.Name, l.Advertised, err)
			}
		}
		if l.tls() && (c.Security.TLSCertFile == "" || c.Security.TLSKeyFile == "") {
			return fmt.Errorf("agent: listener %s is %s: give a TLS certificate and key file", l.Name, l.Protocol)
		}
	}
	s := &c.Security
	if secured(c.Listeners) {
		s.Authorization = true
	}
	if s.ConnectionsMaxReauth < 0 {
		return fmt.Errorf("agent: connections max reauth must not be negative, got %v", s.ConnectionsMaxReauth)
	}
	for _, m := range s.SASLMechanisms {
		if !slices.Contains(auth.AllMechanisms, m) {
			return fmt.Errorf("agent: SASL mechanism %q (want one of %s)", m, strings.Join(auth.AllMechanisms, ", "))
		}
	}
	if s.TLSClientAuth != "" && s.TLSClientAuth != auth.ClientAuthNone && s.TLSClientAuth != auth.ClientAuthRequested &&
		s.TLSClientAuth != auth.ClientAuthRequired {
		return fmt.Errorf("agent: TLS client auth %q (want none, requested or required)", s.TLSClientAuth)
	}
	if _, err := auth.ParsePrincipalRules(s.PrincipalRules); err != nil {
		return fmt.Errorf("agent: principal mapping rules: %w", err)
	}
	return s.validateHTTP()
}

// oauthConfigured tells whether OAUTHBEARER tokens can be validated.
func (s *SecurityConfig) oauthConfigured() bool {
	return len(s.OAuth.KeyFiles) > 0 || s.OAuth.JWKSFile != "" || s.OAuth.AllowUnsecured
}

// mechanisms are the SASL mechanisms to enable.
func (s *SecurityConfig) mechanisms() []string {
	if len(s.SASLMechanisms) > 0 {
		return s.SASLMechanisms
	}
	m := []string{auth.MechanismScramSHA256, auth.MechanismScramSHA512}
	if s.oauthConfigured() {
		m = append(m, auth.MechanismOAuthBearer)
	}
	return m
}

// ParseListeners reads Kafka's listeners ("NAME://host:port,..."), advertised.listeners (the same
// form; a listener not named keeps its bound address) and listener.security.protocol.map
// ("NAME:PROTOCOL,..."; a name that is a protocol needs no entry).
func ParseListeners(listeners, advertised, protocolMap string) ([]ListenerConfig, error) {
	protos := map[string]string{}
	for _, e := range splitComma(protocolMap) {
		name, proto, ok := strings.Cut(e, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("listener security protocol map entry %q: want NAME:PROTOCOL", e)
		}
		protos[strings.ToUpper(name)] = strings.ToUpper(proto)
	}
	adv := map[string]string{}
	for _, e := range splitComma(advertised) {
		name, addr, err := splitListener(e)
		if err != nil {
			return nil, fmt.Errorf("advertised listener: %w", err)
		}
		adv[name] = addr
	}
	var out []ListenerConfig
	for _, e := range splitComma(listeners) {
		name, addr, err := splitListener(e)
		if err != nil {
			return nil, fmt.Errorf("listener: %w", err)
		}
		proto, ok := protos[name]
		if !ok {
			if !slices.Contains(protocols, name) {
				return nil, fmt.Errorf("listener %s: no security protocol (name it one, or map it with the listener security protocol map)", name)
			}
			proto = name
		}
		out = append(out, ListenerConfig{Name: name, Protocol: proto, Addr: addr, Advertised: adv[name]})
		delete(adv, name)
	}
	for name := range adv {
		return nil, fmt.Errorf("advertised listener %s is not a listener", name)
	}
	return out, nil
}

// splitListener reads "NAME://host:port".
func splitListener(s string) (string, string, error) {
	name, addr, ok := strings.Cut(s, "://")
	if !ok || name == "" {
		return "", "", fmt.Errorf("%q: want NAME://host:port", s)
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return "", "", fmt.Errorf("%q: %w", s, err)
	}
	return strings.ToUpper(name), addr, nil
}

func splitComma(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
