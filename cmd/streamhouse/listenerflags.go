package main

import (
	"github.com/streamhouse/streamhouse/agent"
	"github.com/streamhouse/streamhouse/auth"
)

// listenerFlags are the Kafka listeners and their security, named as Kafka names its settings
// (docs/INTERNALS.md, "Security"); without them the agent has one PLAINTEXT listener on
// --kafka-addr, as before.
type listenerFlags struct {
	listeners, advertised, protocolMap string
	mechanisms, superUsers, audience   string
	oauthKeyFiles, httpAuth            string
}

func (f *agentFlags) listenerFlags(fs *flagSet) *listenerFlags {
	l := &listenerFlags{}
	s := &f.cfg.Security
	fs.StringVar(&l.listeners, "listeners", "", "Kafka `listeners`, NAME://host:port comma-separated; a name is a security protocol "+
		"(PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL) or mapped to one by --listener-security-protocol-map (default: PLAINTEXT on --kafka-addr)")
	fs.StringVar(&l.advertised, "advertised-listeners", "", "`addresses` given to the clients of each listener, NAME://host:port "+
		"comma-separated (default: the bound address)")
	fs.StringVar(&l.protocolMap, "listener-security-protocol-map", "", "security protocol of each listener `name`, NAME:PROTOCOL comma-separated")
	fs.StringVar(&s.TLSCertFile, "ssl-cert-file", "", "PEM `file` of the certificate of the SSL and SASL_SSL listeners (re-read when it changes)")
	fs.StringVar(&s.TLSKeyFile, "ssl-key-file", "", "PEM `file` of the key of --ssl-cert-file")
	fs.StringVar(&s.TLSClientCAFile, "ssl-client-ca-file", "", "PEM `file` of the CA certificates of client certificates (mTLS; re-read when it changes)")
	fs.StringVar(&s.TLSClientAuth, "ssl-client-auth", "", "ssl.client.auth: none, requested or required (default: required with "+
		"--ssl-client-ca-file, none without)")
	fs.StringVar(&s.InternalTLSCAFile, "internal-ssl-ca-file", "", "PEM `file` of the CA of the agents' certificates: turns mTLS on "+
		"for the internal listener and the connections to other agents' (re-read when it changes)")
	fs.StringVar(&s.InternalTLSCertFile, "internal-ssl-cert-file", "", "PEM `file` of the certificate this agent shows other agents, "+
		"as server and as client (default: --ssl-cert-file; re-read when it changes)")
	fs.StringVar(&s.InternalTLSKeyFile, "internal-ssl-key-file", "", "PEM `file` of the key of --internal-ssl-cert-file (default: --ssl-key-file)")
	fs.StringVar(&s.PrincipalRules, "ssl-principal-mapping-rules", "", "ssl.principal.mapping.rules for client certificates "+
		"(default: DEFAULT, the certificate's subject)")
	fs.StringVar(&l.mechanisms, "sasl-enabled-mechanisms", "", "SASL `mechanisms` of SASL listeners, comma-separated: PLAIN, "+
		"SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER (default: the SCRAM ones, and OAUTHBEARER with OAuth keys)")
	fs.StringVar(&l.oauthKeyFiles, "sasl-oauthbearer-key-files", "", "PEM `files` of the public keys that may sign OAUTHBEARER tokens, comma-separated")
	fs.StringVar(&s.OAuth.JWKSFile, "sasl-oauthbearer-jwks-file", "", "JWKS `file` of the keys that may sign OAUTHBEARER tokens (re-read when it changes)")
	fs.StringVar(&s.OAuth.Issuer, "sasl-oauthbearer-expected-issuer", "", "`iss` every OAUTHBEARER token must carry")
	fs.StringVar(&l.audience, "sasl-oauthbearer-expected-audience", "", "`audiences`, comma-separated, one of which a token's aud must hold")
	fs.StringVar(&s.OAuth.PrincipalClaim, "sasl-oauthbearer-sub-claim-name", "", "token `claim` that names the user (default: sub)")
	fs.BoolVar(&s.OAuth.AllowUnsecured, "sasl-oauthbearer-unsecured", false, "accept unsigned OAUTHBEARER tokens, as Kafka's "+
		"default validator: anyone can log in as anyone (development and client test suites only)")
	fs.StringVar(&l.superUsers, "super-users", "", "super.users: `principals` allowed everything, semicolon-separated (User:admin;User:ops)")
	fs.BoolVar(&s.AllowEveryoneIfNoACLFound, "allow-everyone-if-no-acl-found", false, "allow.everyone.if.no.acl.found: "+
		"a resource no ACL names is open to all (off: closed)")
	fs.BoolVar(&s.Authorization, "authorization", false, "check ACLs on PLAINTEXT-only agents too (always on with another listener)")
	fs.DurationVar(&s.ConnectionsMaxReauth, "connections-max-reauth", 0, "connections.max.reauth.ms: longest SASL session "+
		"before the client must re-authenticate (a Go `duration`; 0: a token's own expiry only)")
	fs.IntVar(&s.QuotaWindowNum, "quota-window-num", auth.DefaultQuotaWindowNum, "quota.window.num: `samples` a client's byte rate is measured over")
	fs.DurationVar(&s.QuotaWindowSize, "quota-window-size", auth.DefaultQuotaWindowSize, "quota.window.size.seconds: each sample's `duration`")
	fs.StringVar(&l.httpAuth, "http-auth", "", "how the HTTP port authenticates all but /healthz and /readyz, comma-separated `methods`: "+
		"basic (the SCRAM users' passwords), tls (client certificates of --ssl-client-ca-file; needs --http-tls); "+
		"with ACLs on, the principal needs Describe on the cluster (default: none)")
	fs.BoolVar(&s.HTTPTLS, "http-tls", false, "serve the HTTP port over TLS with --ssl-cert-file")
	return l
}

// apply puts the parsed listeners, mechanisms, super users and audiences into cfg.
func (l *listenerFlags) apply(cfg *agent.Config) error {
	var err error
	if cfg.Listeners, err = agent.ParseListeners(l.listeners, l.advertised, l.protocolMap); err != nil {
		return usagef("--listeners: %v", err)
	}
	if len(cfg.Listeners) == 0 && (l.advertised != "" || l.protocolMap != "") {
		return usagef("--advertised-listeners and --listener-security-protocol-map need --listeners")
	}
	s := &cfg.Security
	if s.InternalTLSCAFile != "" && s.InternalTLSCertFile == "" && s.InternalTLSKeyFile == "" {
		s.InternalTLSCertFile, s.InternalTLSKeyFile = s.TLSCertFile, s.TLSKeyFile
	}
	s.SASLMechanisms = splitList(l.mechanisms)
	s.OAuth.KeyFiles = splitList(l.oauthKeyFiles)
	s.OAuth.Audience = splitList(l.audience)
	s.HTTPAuth = agent.ParseHTTPAuth(l.httpAuth)
	if s.SuperUsers, err = auth.ParseSuperUsers(l.superUsers); err != nil {
		return usagef("--super-users: %v", err)
	}
	return nil
}
