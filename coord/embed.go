package coord

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/server/v3/embed"
)

// Defaults of EmbedConfig.
const (
	DefaultEmbedName       = "streamhouse"
	DefaultEmbedClientAddr = "127.0.0.1:2379"
	DefaultEmbedPeerAddr   = "127.0.0.1:2380"
	// Keep the last 10000 revisions: enough for a lagging watcher to catch up, bounded for a
	// long-running dev instance.
	DefaultEmbedCompactionRetention = "10000"
	// 4 GiB: twice etcd's default, well under its recommended 8 GiB ceiling.
	DefaultEmbedQuotaBytes = 4 << 30
	// DefaultEmbedMaxTxnOps is the embedded etcd's --max-txn-ops: enough for a flush's index commit,
	// 2 operations per partition, to be one Txn over 1,024 partitions and more, up to 2,048 if the
	// Txn's byte budget (DefaultEmbedMaxRequestBytes) allows; etcd's default, 128, splits it every
	// 64. Clients use it only if told: Config.MaxTxnOps.
	DefaultEmbedMaxTxnOps = 4096
	// DefaultEmbedMaxRequestBytes is the embedded etcd's --max-request-bytes, 4 MiB: Txns are packed
	// to 2/3 of it, about 2.7 MiB, which holds a flush's index commit over 1,024 partitions of
	// idempotent producers (about 1.3 KiB each, with 5 batches per producer) twice over; at etcd's
	// default, 1.5 MiB, the 1 MiB budget splits it in two. etcd takes up to 10 MiB without a warning.
	// Clients use it only if told: Config.MaxRequestBytes.
	DefaultEmbedMaxRequestBytes = 4 << 20
)

// EmbedConfig configures a single-member etcd running inside this process.
type EmbedConfig struct {
	Dir        string // data directory; required. Data survives a restart with the same Dir.
	Name       string // member name; default DefaultEmbedName
	ClientAddr string // host:port; default DefaultEmbedClientAddr; port 0 picks a free port
	PeerAddr   string // host:port; default DefaultEmbedPeerAddr; port 0 picks a free port
	// MaxTxnOps is etcd's --max-txn-ops; default DefaultEmbedMaxTxnOps, at least DefaultMaxTxnOps.
	MaxTxnOps int
	// MaxRequestBytes is etcd's --max-request-bytes; default DefaultEmbedMaxRequestBytes, at least
	// DefaultMaxRequestBytes, at most MaxMaxRequestBytes.
	MaxRequestBytes int64
	// QuotaBytes is etcd's --quota-backend-bytes: past it etcd raises NOSPACE and refuses writes;
	// default DefaultEmbedQuotaBytes.
	QuotaBytes int64
	Logger     hclog.Logger

	// UnsafeNoFsync skips fsync: for tests only, a crash loses data.
	UnsafeNoFsync bool

	// ClientTLS, when set, serves clients over TLS only (https), and with a ClientCAFile only to
	// clients with a certificate it signed (etcd's --client-cert-auth).
	ClientTLS *EmbedTLS
}

// EmbedTLS is the embedded etcd's client TLS: PEM files.
type EmbedTLS struct {
	CertFile, KeyFile string
	ClientCAFile      string
}

// Validate fills in defaults and rejects what cannot work.
func (cfg *EmbedConfig) Validate() error {
	if cfg.Dir == "" {
		return errors.New("coord: embedded etcd: Dir is required")
	}
	if cfg.Name == "" {
		cfg.Name = DefaultEmbedName
	}
	if cfg.ClientAddr == "" {
		cfg.ClientAddr = DefaultEmbedClientAddr
	}
	if cfg.PeerAddr == "" {
		cfg.PeerAddr = DefaultEmbedPeerAddr
	}
	if cfg.MaxTxnOps == 0 {
		cfg.MaxTxnOps = DefaultEmbedMaxTxnOps
	}
	if cfg.MaxTxnOps < DefaultMaxTxnOps {
		// A client refused more operations than this falls back to etcd's default, and would then be
		// refused again.
		return fmt.Errorf("coord: embedded etcd: MaxTxnOps %d is below etcd's default %d", cfg.MaxTxnOps, DefaultMaxTxnOps)
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultEmbedMaxRequestBytes
	}
	if cfg.QuotaBytes == 0 {
		cfg.QuotaBytes = DefaultEmbedQuotaBytes
	}
	if cfg.QuotaBytes < 0 {
		return fmt.Errorf("coord: embedded etcd: QuotaBytes %d is negative", cfg.QuotaBytes)
	}
	if cfg.MaxRequestBytes < DefaultMaxRequestBytes {
		// A client refused a larger request falls back to etcd's default, and would then be refused
		// again.
		return fmt.Errorf("coord: embedded etcd: MaxRequestBytes %d is below etcd's default %d", cfg.MaxRequestBytes, DefaultMaxRequestBytes)
	}
	if cfg.MaxRequestBytes > MaxMaxRequestBytes {
		return fmt.Errorf("coord: embedded etcd: MaxRequestBytes %d is above %d", cfg.MaxRequestBytes, MaxMaxRequestBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return nil
}

// Embedded is a running embedded etcd.
type Embedded struct {
	etcd      *embed.Etcd
	log       hclog.Logger
	closeOnce sync.Once
}

// etcdConfig translates cfg into etcd's configuration.
func (cfg *EmbedConfig) etcdConfig() (*embed.Config, error) {
	scheme := "http://"
	if cfg.ClientTLS != nil {
		scheme = "https://"
	}
	curl, err := url.Parse(scheme + cfg.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("coord: embedded etcd: client address %q: %w", cfg.ClientAddr, err)
	}
	purl, err := url.Parse("http://" + cfg.PeerAddr)
	if err != nil {
		return nil, fmt.Errorf("coord: embedded etcd: peer address %q: %w", cfg.PeerAddr, err)
	}
	ec := embed.NewConfig()
	ec.Name = cfg.Name
	ec.Dir = cfg.Dir
	ec.ListenClientUrls, ec.AdvertiseClientUrls = []url.URL{*curl}, []url.URL{*curl}
	ec.ListenPeerUrls, ec.AdvertisePeerUrls = []url.URL{*purl}, []url.URL{*purl}
	// A single member. On restart etcd takes membership from its data directory and ignores
	// this, so a changed peer address (port 0) does not matter: no peer ever dials it.
	ec.InitialCluster = ec.InitialClusterFromName(cfg.Name)
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zapToHclog(cfg.Logger.Named("etcd")))
	ec.AutoCompactionMode = "revision"
	ec.AutoCompactionRetention = DefaultEmbedCompactionRetention
	ec.QuotaBackendBytes = cfg.QuotaBytes
	ec.MaxTxnOps = uint(cfg.MaxTxnOps)
	ec.MaxRequestBytes = uint(cfg.MaxRequestBytes)
	ec.UnsafeNoFsync = cfg.UnsafeNoFsync
	if t := cfg.ClientTLS; t != nil {
		ec.ClientTLSInfo.CertFile, ec.ClientTLSInfo.KeyFile = t.CertFile, t.KeyFile
		ec.ClientTLSInfo.TrustedCAFile, ec.ClientTLSInfo.ClientCertAuth = t.ClientCAFile, t.ClientCAFile != ""
	}
	return ec, nil
}

// StartEmbedded starts etcd and waits, within ctx, until it serves requests.
func StartEmbedded(ctx context.Context, cfg EmbedConfig) (*Embedded, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ec, err := cfg.etcdConfig()
	if err != nil {
		return nil, err
	}
	etcd, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("coord: start embedded etcd in %s (client %s, peer %s): %w", cfg.Dir, cfg.ClientAddr, cfg.PeerAddr, err)
	}
	e := &Embedded{etcd: etcd, log: cfg.Logger.Named("etcd")}
	select {
	case <-etcd.Server.ReadyNotify():
	case err := <-etcd.Err():
		e.Close()
		return nil, fmt.Errorf("coord: embedded etcd in %s failed to start: %w", cfg.Dir, err)
	case <-etcd.Server.StopNotify():
		e.Close()
		return nil, fmt.Errorf("coord: embedded etcd in %s stopped while starting", cfg.Dir)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("coord: embedded etcd in %s not ready: %w", cfg.Dir, ctx.Err())
	}
	e.log.Info("embedded etcd ready", "dir", cfg.Dir, "client", e.Endpoints(), "peer", etcd.Peers[0].Addr().String(),
		"max_txn_ops", cfg.MaxTxnOps, "max_request_bytes", cfg.MaxRequestBytes)
	return e, nil
}

// Endpoints are the addresses clients reach it at, as bound (a port 0 is resolved).
func (e *Embedded) Endpoints() []string {
	eps := make([]string, 0, len(e.etcd.Clients))
	for _, l := range e.etcd.Clients {
		eps = append(eps, l.Addr().String())
	}
	return eps
}

// Close stops etcd, waiting for it to finish. Safe to call twice.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		e.etcd.Close()
		e.log.Debug("embedded etcd stopped")
	})
}
