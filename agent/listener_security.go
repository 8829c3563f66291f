package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
	"github.com/streamhouse/streamhouse/coord"
)

// kafkaListener is one bound Kafka client listener.
type kafkaListener struct {
	cfg        ListenerConfig
	ln         net.Listener // a tls.NewListener for SSL and SASL_SSL
	advertised string
	tls        *tls.Config
}

// agentSecurity is what the Kafka path asks about who a client is and what it may do
// (docs/INTERNALS.md, "Security"). sasl, authz and quotas are made once the watched view is
// ready; authz is nil while authorization is off (every request allowed, as before security).
type agentSecurity struct {
	listeners []*kafkaListener
	tlsConfig *tls.Config // shared by the TLS listeners; nil without one
	rules     *auth.PrincipalRules
	sasl      *auth.SASL
	authz     *auth.Authorizer
	quotas    *auth.Quotas
	// internalServer and internalClient are the internal listener's mTLS (internal_tls.go); nil
	// without it.
	internalServer, internalClient *tls.Config
}

// bindListeners binds every Kafka listener; a.kafkaLn is the first's (KafkaAddr). TLS
// configurations are made here so that a wrong file fails Start before anything is registered.
func (a *Agent) bindListeners() error {
	s := &a.sec
	cfgs := a.cfg.listenerConfigs()
	var err error
	if s.rules, err = auth.ParsePrincipalRules(a.cfg.Security.PrincipalRules); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	for _, lc := range cfgs {
		if lc.tls() && s.tlsConfig == nil {
			if s.tlsConfig, err = auth.ServerTLS(auth.TLSConfig{
				CertFile: a.cfg.Security.TLSCertFile, KeyFile: a.cfg.Security.TLSKeyFile,
				ClientCAFile: a.cfg.Security.TLSClientCAFile, ClientAuth: a.cfg.Security.TLSClientAuth,
				Logger: a.log, Metrics: a.tlsMetrics,
			}); err != nil {
				return fmt.Errorf("agent: listener %s: %w", lc.Name, err)
			}
		}
	}
	for i, lc := range cfgs {
		ln, err := net.Listen("tcp", lc.Addr)
		if err != nil {
			a.closeListeners()
			return fmt.Errorf("agent: kafka listener %s: %w", lc.Name, err)
		}
		if i == 0 && a.wrapListener != nil {
			ln = a.wrapListener(ln)
		}
		l := &kafkaListener{cfg: lc, advertised: lc.Advertised}
		if l.advertised == "" {
			l.advertised = ln.Addr().String()
		}
		if lc.tls() {
			l.tls = s.tlsConfig
			ln = tls.NewListener(ln, s.tlsConfig)
		}
		l.ln = ln
		s.listeners = append(s.listeners, l)
	}
	a.kafkaLn = s.listeners[0].ln
	a.cfg.AdvertisedAddr = s.listeners[0].advertised
	return nil
}

// listenerAddrs are the advertised addresses by listener name for the registration; nil for the
// single PLAINTEXT listener of an agent without listener configuration (Addr says it all).
func (a *Agent) listenerAddrs() map[string]string {
	if len(a.cfg.Listeners) == 0 {
		return nil
	}
	m := map[string]string{}
	for _, l := range a.sec.listeners {
		m[l.cfg.Name] = l.advertised
	}
	return m
}

// serveListeners serves every Kafka listener until ctx ends.
func (a *Agent) serveListeners(ctx context.Context) {
	var wg sync.WaitGroup
	for _, l := range a.sec.listeners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.serveKafka(ctx, l)
		}()
	}
	wg.Wait()
}

// closeListeners closes every bound Kafka listener.
func (a *Agent) closeListeners() {
	for _, l := range a.sec.listeners {
		l.ln.Close()
	}
}

// newSecurity makes the SASL server, the authorizer and the quota calculator over the watched
// view, once it is ready. An agent whose listeners are all PLAINTEXT makes none unless
// authorization is asked for: nothing changes for it.
func (a *Agent) newSecurity() error {
	s, sc := &a.sec, &a.cfg.Security
	needSASL := false
	for _, l := range s.listeners {
		needSASL = needSASL || l.cfg.sasl()
	}
	if needSASL {
		cfg := auth.SASLConfig{Mechanisms: sc.mechanisms(), Credentials: a.cache, Logger: a.log, Registerer: a.cfg.Registerer}
		if sc.oauthConfigured() {
			oc := sc.OAuth
			oc.Logger = a.log
			v, err := auth.NewOAuthValidator(oc)
			if err != nil {
				return fmt.Errorf("agent: %w", err)
			}
			cfg.OAuth = v
		}
		var err error
		if s.sasl, err = auth.NewSASL(cfg); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	var err error
	if s.quotas, err = auth.NewQuotas(a.cache, auth.QuotaConfig{WindowNum: sc.QuotaWindowNum, WindowSize: sc.QuotaWindowSize,
		Registerer: a.cfg.Registerer}); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if !sc.Authorization {
		return nil
	}
	if s.authz, err = auth.NewAuthorizer(a.cache, auth.AuthorizerConfig{SuperUsers: sc.SuperUsers,
		AllowEveryoneIfNoACLFound: sc.AllowEveryoneIfNoACLFound, Logger: a.log, Registerer: a.cfg.Registerer}); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}

// connSec is one connection's security state: its listener, who it is, and its SASL exchange.
type connSec struct {
	l    *kafkaListener
	host netip.Addr

	mu            sync.Mutex
	principal     auth.Principal
	identity      auth.Identity // of the last SASL authentication
	authenticated bool          // SASL done, or not needed on this listener
	failed        bool          // authentication failed: the next request closes the connection
	session       auth.Session  // a SASL exchange under way
	handshakeV    int16         // the version of the handshake that began it
	mech          string        // its mechanism
	reauth        bool          // the exchange re-authenticates (KIP-368)
	lastServerMsg []byte        // the mechanism's last answer (OAUTHBEARER's error status)
	expires       time.Time     // when the session must be re-authenticated; zero: never
	rawNext       bool          // a v0 handshake: the next frame is a bare SASL token
	mutedUntil    int64         // unix ns: a quota mutes the connection until then (KIP-219)
}

// who is the connection's principal now.
func (cs *connSec) who() auth.Principal {
	if cs == nil {
		return auth.Anonymous
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.principal
}

// hostAddr is the client's address as ACLs compare it.
func (cs *connSec) hostAddr() netip.Addr {
	if cs == nil {
		return netip.Addr{}
	}
	return cs.host
}

// wantsRaw tells whether the next frame is a bare SASL token (after a v0 SaslHandshake).
func (cs *connSec) wantsRaw() bool {
	if cs == nil {
		return false
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.rawNext
}

// secureConn finishes a connection's TLS handshake, within the frame timeout, and takes the
// principal of its client certificate; ok false closes the connection (why is logged).
func (a *Agent) secureConn(ctx context.Context, nc net.Conn, l *kafkaListener, log hclog.Logger) (*connSec, bool) {
	if l == nil {
		return nil, true
	}
	cs := &connSec{l: l, principal: auth.Anonymous, authenticated: !l.cfg.sasl()}
	if ap, err := netip.ParseAddrPort(nc.RemoteAddr().String()); err == nil {
		cs.host = ap.Addr().Unmap()
	}
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return cs, true
	}
	hctx, cancel := context.WithTimeout(ctx, a.cfg.FrameTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		a.warnBadFrame(log, "closing connection: TLS handshake failed", "listener", l.cfg.Name, "error", err)
		return nil, false
	}
	if l.cfg.Protocol == ProtocolSSL {
		p, err := auth.TLSPrincipal(tc.ConnectionState(), a.sec.rules)
		if err != nil {
			a.warnBadFrame(log, "closing connection: client certificate maps to no principal", "error", err)
			return nil, false
		}
		cs.principal = p
	}
	return cs, true
}

// errSASLRequired and errSessionExpired close a connection (Kafka's IllegalSaslState and expired
// session handling): they are logged, never answered.
var (
	errSASLRequired   = errors.New("request before SASL authentication")
	errSessionExpired = errors.New("SASL session expired without re-authentication (KIP-368)")
	errSASLFailed     = errors.New("request after failed SASL authentication")
)

// admit tells whether a connection may send req now. A SASL listener takes ApiVersions,
// SaslHandshake and SaslAuthenticate before authentication and nothing else, as Kafka; a session
// past its lifetime takes only a re-authentication. Refused requests close the connection.
func (cs *connSec) admit(req kmsg.Request, now time.Time) error {
	if cs == nil {
		return nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	switch req.(type) {
	case *kmsg.ApiVersionsRequest, *kmsg.SASLHandshakeRequest, *kmsg.SASLAuthenticateRequest:
		if cs.failed {
			return errSASLFailed
		}
		return nil
	}
	switch {
	case cs.failed:
		return errSASLFailed
	case !cs.authenticated:
		return errSASLRequired
	case !cs.expires.IsZero() && now.After(cs.expires):
		return errSessionExpired
	}
	return nil
}

// admitRequest waits out a quota's mute (the request read meanwhile waits with it, as in Kafka's
// muted channel), then applies admit and logs a refusal; false closes the connection.
func (a *Agent) admitRequest(ctx context.Context, cs *connSec, req kmsg.Request, log hclog.Logger) bool {
	if !cs.awaitUnmuted(ctx) {
		return false
	}
	err := cs.admit(req, time.Now())
	if err == nil {
		return true
	}
	a.warnBadFrame(log, "closing connection", "listener", cs.l.cfg.Name, "api", kmsg.NameForKey(req.Key()),
		"principal", cs.who().String(), "reason", err)
	return false
}

// listenerName is the name of the listener c connected to; PLAINTEXT for a client of no listener.
func (c client) listenerName() string {
	if c.sec == nil {
		return ProtocolPlaintext
	}
	return c.sec.l.cfg.Name
}

// advertisedFor is agent ag's address on listener name, as Kafka gives each client the addresses of
// the listener it uses; an agent without listener configuration has one, PLAINTEXT, at Addr. An
// agent without that listener has no address for its clients (false), and is left out.
func advertisedFor(ag coord.AgentInfo, name string) (string, bool) {
	if ag.Listeners == nil {
		return ag.Addr, name == ProtocolPlaintext
	}
	addr, ok := ag.Listeners[name]
	return addr, ok
}

// brokersFor are the brokers (a.brokers) as c's listener gives them: their addresses on it.
func (a *Agent) brokersFor(c client) []coord.AgentInfo {
	all := a.brokers()
	if c.sec == nil {
		return all
	}
	out := all[:0:0]
	for _, ag := range all {
		if addr, ok := advertisedFor(ag, c.listenerName()); ok {
			ag.Addr = addr
			out = append(out, ag)
		}
	}
	return out
}

// listenerHints rewrites a produce response's leader hints (KIP-951) to the addresses of c's
// listener.
func (a *Agent) listenerHints(resp *kmsg.ProduceResponse, c client) {
	if c.sec == nil || len(resp.Brokers) == 0 {
		return
	}
	addrs := map[int32]string{}
	for _, ag := range a.brokersFor(c) {
		addrs[a.nodeID(ag.ID)] = ag.Addr
	}
	out := resp.Brokers[:0]
	for _, b := range resp.Brokers {
		host, port, err := net.SplitHostPort(addrs[b.NodeID])
		if err != nil {
			continue
		}
		p, _ := strconv.Atoi(port)
		b.Host, b.Port = host, int32(p)
		out = append(out, b)
	}
	resp.Brokers = out
}

// hostOfRemote is the address of a "host:port" as ACL hosts compare it.
func hostOfRemote(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
