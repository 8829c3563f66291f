package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
)

// Kafka's ssl.client.auth values.
const (
	ClientAuthNone      = "none"
	ClientAuthRequested = "requested"
	ClientAuthRequired  = "required"
)

// TLSConfig configures a listener's TLS: its certificate, and the CA of client certificates.
type TLSConfig struct {
	CertFile, KeyFile string // PEM; re-read when either changes
	ClientCAFile      string // PEM CA certificates of client certificates; re-read when it changes
	// ClientAuth is Kafka's ssl.client.auth: none, requested or required; default required
	// with a ClientCAFile, none without.
	ClientAuth string
	Logger     hclog.Logger
	Metrics    *TLSMetrics      // nil: not counted
	Now        func() time.Time // default time.Now
}

// TLSMetrics counts certificate reloads; one per registry, shared by every listener.
type TLSMetrics struct{ ok, failed prometheus.Counter }

// NewTLSMetrics registers the reload counters on reg (nil: unregistered).
func NewTLSMetrics(reg prometheus.Registerer) *TLSMetrics {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_tls_reloads_total",
		Help: "Certificate, key and CA files re-read after they changed, by result (ok, failed: the previous ones stay in use).",
	}, []string{"result"})
	register(reg, vec)
	return &TLSMetrics{ok: vec.WithLabelValues("ok"), failed: vec.WithLabelValues("failed")}
}

func (m *TLSMetrics) observer(log hclog.Logger, what string) func(error) {
	return func(err error) {
		if err != nil {
			log.Warn("TLS files changed but could not be loaded; the previous ones stay in use", "files", what, "error", err)
		} else {
			log.Info("TLS files reloaded", "files", what)
		}
		if m == nil {
			return
		}
		if err != nil {
			m.failed.Inc()
		} else {
			m.ok.Inc()
		}
	}
}

// ServerTLS builds a listener's tls.Config: at least TLS 1.2, the certificate from files re-read
// when they change (a renewed certificate is served without a restart), client certificates
// checked against the CA file as ClientAuth says.
func ServerTLS(cfg TLSConfig) (*tls.Config, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("auth: TLS needs a certificate and a key file")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	log := cfg.Logger.Named("tls")
	auth, err := clientAuth(cfg.ClientAuth, cfg.ClientCAFile != "")
	if err != nil {
		return nil, err
	}
	pair, err := newWatched(func() (*tls.Certificate, error) { return loadPair(cfg.CertFile, cfg.KeyFile) },
		cfg.Metrics.observer(log, cfg.CertFile+", "+cfg.KeyFile), cfg.Now, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	base := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		ClientAuth:     auth,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return pair.get(), nil },
	}
	if cfg.ClientCAFile == "" {
		return base, nil
	}
	cas, err := newWatched(func() (*x509.CertPool, error) { return loadCAs(cfg.ClientCAFile) },
		cfg.Metrics.observer(log, cfg.ClientCAFile), cfg.Now, cfg.ClientCAFile)
	if err != nil {
		return nil, err
	}
	base.ClientCAs = cas.get()
	// Each handshake takes the CA pool as it is now.
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = cas.get()
		return c, nil
	}
	return base, nil
}

func clientAuth(s string, haveCA bool) (tls.ClientAuthType, error) {
	switch {
	case s == "" && haveCA, s == ClientAuthRequired && haveCA:
		return tls.RequireAndVerifyClientCert, nil
	case s == ClientAuthRequested && haveCA:
		return tls.VerifyClientCertIfGiven, nil
	case s == "" || s == ClientAuthNone:
		return tls.NoClientCert, nil
	case s == ClientAuthRequested || s == ClientAuthRequired:
		return 0, fmt.Errorf("auth: client auth %q needs a client CA file", s)
	}
	return 0, fmt.Errorf("auth: client auth %q: want none, requested or required", s)
}

func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("auth: certificate %s, key %s: %w", certFile, keyFile, err)
	}
	return &c, nil
}

func loadCAs(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("auth: %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ClientTLSConfig configures a client's TLS (to etcd, to S3): the CA to trust and, for mTLS, a
// client certificate.
type ClientTLSConfig struct {
	CAFile            string // PEM; empty: the system's roots
	CertFile, KeyFile string // PEM; both or neither; re-read when either changes
	Logger            hclog.Logger
	Metrics           *TLSMetrics
}

// Enabled tells whether any TLS setting is given.
func (c ClientTLSConfig) Enabled() bool { return c.CAFile != "" || c.CertFile != "" || c.KeyFile != "" }

// ClientTLS builds a client's tls.Config.
func ClientTLS(cfg ClientTLSConfig) (*tls.Config, error) {
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("auth: a client certificate needs both a certificate and a key file")
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pool, err := loadCAs(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	if cfg.CertFile != "" {
		pair, err := newWatched(func() (*tls.Certificate, error) { return loadPair(cfg.CertFile, cfg.KeyFile) },
			cfg.Metrics.observer(cfg.Logger.Named("tls"), cfg.CertFile+", "+cfg.KeyFile), nil, cfg.CertFile, cfg.KeyFile)
		if err != nil {
			return nil, err
		}
		c.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return pair.get(), nil }
	}
	return c, nil
}
