package coord

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Conditions callers act on. Errors returned by coord wrap these with %w and add the detail
// (which partition, which holder), so test them with errors.Is.
var (
	ErrFenced = errors.New("coord: fenced: leader epoch changed")
	// ErrGroupChanged: a group write was based on a version of the group that is no longer etcd's
	// (an earlier write whose outcome was unknown did apply, say); the coordinator must reload the
	// group. Nothing was written.
	ErrGroupChanged  = errors.New("coord: group changed since its state was read")
	ErrLeaderHeld    = errors.New("coord: partition led by another agent")
	ErrTopicExists   = errors.New("coord: topic already exists")
	ErrUnknownTopic  = errors.New("coord: unknown topic")
	ErrAgentIDInUse  = errors.New("coord: agent id registered by a live agent at another address")
	ErrSessionClosed = errors.New("coord: session closed")
)

// Defaults of Config.
const (
	DefaultPrefix      = "/streamhouse/"
	DefaultDialTimeout = 5 * time.Second
	DefaultMaxTxnOps   = 128 // etcd's default --max-txn-ops
	// MinMaxTxnOps is the least Config.MaxTxnOps: a partition's commit compares 2 keys, its leader
	// key and its commit record's key.
	MinMaxTxnOps = 2
	// DefaultMaxRequestBytes is etcd's default --max-request-bytes, 1.5 MiB.
	DefaultMaxRequestBytes = 3 << 19
	// MinMaxRequestBytes is the least Config.MaxRequestBytes: Txns are packed to 2/3 of it, which
	// still holds the commits of a few dozen partitions.
	MinMaxRequestBytes = 64 << 10
	// MaxMaxRequestBytes is the most Config.MaxRequestBytes, 1 GiB: far above the 10 MiB etcd
	// recommends, and with etcd's gRPC headroom (requestOverheadBytes) well within what one gRPC
	// message carries (2 GiB).
	MaxMaxRequestBytes = 1 << 30

	// DefaultCommitAttemptTimeout is twice etcd's default election timeout (1 s). A member that
	// forwarded a Txn to a leader that then died holds it until etcd's own request timeout (5 s + 2 ×
	// the election timeout) and then answers "request timed out"; by this deadline a new leader has
	// been elected, and the commit is sent again.
	DefaultCommitAttemptTimeout = 2 * time.Second
	// DefaultCommitTimeout bounds all the attempts of one commit Txn; then its outcome is unknown.
	DefaultCommitTimeout = 10 * time.Second
)

// Config says how to reach etcd and where StreamHouse's keys live.
type Config struct {
	Endpoints   []string
	Prefix      string                // default DefaultPrefix; a missing trailing "/" is added
	DialTimeout time.Duration         // default DefaultDialTimeout
	MaxTxnOps   int                   // default DefaultMaxTxnOps; must not exceed the servers' --max-txn-ops (if it does, the client falls back to DefaultMaxTxnOps)
	Logger      hclog.Logger          // default: no logs
	Registerer  prometheus.Registerer // nil: metrics are kept but not registered

	// MaxRequestBytes is the etcd servers' --max-request-bytes the client may assume (default
	// DefaultMaxRequestBytes, etcd's default; must not exceed the servers': if it does, the client
	// falls back to DefaultMaxRequestBytes). Commits and group writes are packed into Txns of at
	// most 2/3 of it, as estimated (txnBytes).
	MaxRequestBytes int64

	// CommitAttemptTimeout is the deadline of the first attempt of a commit Txn, and of the Txns
	// of group writes, Acquire and maintenance writes (default DefaultCommitAttemptTimeout); each attempt
	// that times out doubles it for the next.
	CommitAttemptTimeout time.Duration
	// CommitTimeout bounds all the attempts of one such Txn together (default
	// DefaultCommitTimeout; never less than CommitAttemptTimeout).
	CommitTimeout time.Duration

	// TLS, when set, is used for every endpoint (etcd's https:// client URLs, with a client
	// certificate for --client-cert-auth).
	TLS *tls.Config
	// Username and Password authenticate to etcd when its RBAC is on (etcd's --user).
	Username, Password string
}

// Validate fills in defaults and rejects what cannot work.
func (cfg *Config) Validate() error {
	if len(cfg.Endpoints) == 0 {
		return errors.New("coord: no etcd endpoints")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.CommitAttemptTimeout <= 0 {
		cfg.CommitAttemptTimeout = DefaultCommitAttemptTimeout
	}
	if cfg.CommitTimeout <= 0 {
		cfg.CommitTimeout = DefaultCommitTimeout
	}
	cfg.CommitTimeout = max(cfg.CommitTimeout, cfg.CommitAttemptTimeout)
	if cfg.MaxTxnOps < MinMaxTxnOps {
		return fmt.Errorf("coord: MaxTxnOps %d: a commit needs at least %d operations", cfg.MaxTxnOps, MinMaxTxnOps)
	}
	if cfg.MaxRequestBytes < MinMaxRequestBytes {
		return fmt.Errorf("coord: MaxRequestBytes %d: a Txn needs at least %d", cfg.MaxRequestBytes, MinMaxRequestBytes)
	}
	if cfg.MaxRequestBytes > MaxMaxRequestBytes {
		return fmt.Errorf("coord: MaxRequestBytes %d: more than %d", cfg.MaxRequestBytes, MaxMaxRequestBytes)
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return errors.New("coord: an etcd user needs a password, and a password a user")
	}
	return nil
}

// Client is a connection to etcd under one key prefix. It is safe for concurrent use.
type Client struct {
	etcd    *clientv3.Client
	cfg     Config
	keys    keys
	log     hclog.Logger
	metrics *metrics

	// txnOpsCap, once set (to DefaultMaxTxnOps), caps cfg.MaxTxnOps: etcd refused a Txn for having
	// more operations than its --max-txn-ops (see fallBackTxnOps). 0 until then; it never rises again.
	txnOpsCap atomic.Int64
	// requestBytesCap, once set (to DefaultMaxRequestBytes), caps cfg.MaxRequestBytes: etcd refused a
	// Txn as larger than its --max-request-bytes (see fallBackRequestBytes). 0 until then; it never
	// rises again.
	requestBytesCap atomic.Int64

	// txnHook, set by tests, runs each attempt of a Txn sent by txnAttempts instead of do; readHook
	// does so for the reads of failed commits (readFailed), which txnHook does not see.
	txnHook  func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error)
	readHook func(ctx context.Context, attempt int, do func(context.Context) (*clientv3.TxnResponse, error)) (*clientv3.TxnResponse, error)

	closeOnce sync.Once
	closeErr  error
}

// Connect dials etcd and checks, within DialTimeout, that the cluster answers a linearizable
// read, so that an unreachable etcd is one clear error instead of a hang.
func Connect(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	eps := strings.Join(cfg.Endpoints, ",")
	etcd, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		Logger:      zap.NewNop(),
		Context:     context.WithoutCancel(ctx), // the client outlives Connect's ctx
		// Without keepalives a silently dead etcd connection is only noticed by TCP timeouts.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		// gRPC's own limit on what the client sends (2 MiB unless set) would refuse a Txn packed for
		// an etcd allowing more before etcd sees it. etcd's gRPC server takes requests up to its
		// --max-request-bytes plus requestOverheadBytes, and refuses what exceeds
		// --max-request-bytes itself (isRequestTooLarge); the client sends as much. Answers are
		// limited by MaxCallRecvMsgSize, 2 GiB unless set.
		MaxCallSendMsgSize: int(cfg.MaxRequestBytes + requestOverheadBytes),
		TLS:                cfg.TLS,
		Username:           cfg.Username,
		Password:           cfg.Password,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: cannot reach %s: %w", eps, err)
	}
	c := &Client{
		etcd:    etcd,
		cfg:     cfg,
		keys:    keys{prefix: cfg.Prefix},
		log:     cfg.Logger.Named("coord"),
		metrics: newMetrics(cfg.Registerer),
	}
	if err := c.ping(ctx); err != nil {
		_ = etcd.Close()
		return nil, err
	}
	c.log.Debug("connected to etcd", "endpoints", eps, "prefix", cfg.Prefix)
	return c, nil
}

// ping reads one key linearizably: that needs a connection and a cluster with a leader.
func (c *Client) ping(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	_, err := c.etcd.Get(pctx, c.keys.pidNext(), clientv3.WithCountOnly())
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case pctx.Err() != nil:
		// gRPC wraps the deadline in a status; say it plainly, with the TLS error if TLS is why.
		err = pctx.Err()
		if c.cfg.TLS != nil {
			if terr := tlsProblem(ctx, c.cfg.Endpoints[0], c.cfg.TLS); terr != nil {
				err = fmt.Errorf("%w (TLS to %s: %v)", err, c.cfg.Endpoints[0], terr)
			}
		}
	}
	return fmt.Errorf("etcd: cannot reach %s within %s: %w",
		strings.Join(c.cfg.Endpoints, ","), c.cfg.DialTimeout, err)
}

// Close closes the connection; sessions of this client stop renewing their leases (close them
// first to release their leadership at once). Safe to call twice.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.etcd.Close() })
	return c.closeErr
}

// maxTxnOps is the most operations (compares, or operations of either branch) the Txns this client
// packs may have now: Config.MaxTxnOps, or DefaultMaxTxnOps once etcd refused more.
func (c *Client) maxTxnOps() int {
	if cp := int(c.txnOpsCap.Load()); cp > 0 {
		return min(cp, c.cfg.MaxTxnOps)
	}
	return c.cfg.MaxTxnOps
}

// isTooManyOps tells whether etcd refused a Txn for having more operations than its --max-txn-ops.
// The client translates etcd's gRPC status into rpctypes.ErrTooManyOps; a status passed on as it
// came (by a test's hook, say) is recognised by its code and message, as the client does.
func isTooManyOps(err error) bool {
	if errors.Is(err, rpctypes.ErrTooManyOps) {
		return true
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return false
	}
	st := se.GRPCStatus()
	return st.Code() == codes.InvalidArgument && st.Message() == rpctypes.ErrorDesc(rpctypes.ErrGRPCTooManyOps)
}

// fallBackTxnOps is called when etcd refused, for too many operations, a Txn packed to limit
// operations: Config.MaxTxnOps exceeds the --max-txn-ops of the member that answered. etcd checks the
// count as the request arrives, before proposing it, so nothing of that Txn was applied and its
// operations may be sent again in smaller Txns. Rather than fail every commit until someone
// notices, the client falls back to DefaultMaxTxnOps, etcd's own default, for good (one warning).
// It reports whether packing again can help: not when limit was DefaultMaxTxnOps or less already
// (an etcd configured below its default).
func (c *Client) fallBackTxnOps(limit int) bool {
	if limit <= DefaultMaxTxnOps {
		return false
	}
	if c.txnOpsCap.CompareAndSwap(0, DefaultMaxTxnOps) {
		c.log.Warn("etcd refused a Txn for having more operations than its --max-txn-ops allows; packing Txns to etcd's default from now on, "+
			"at a cost in Txns per flush: set --etcd-max-txn-ops (Config.MaxTxnOps) to the etcd servers' --max-txn-ops, or raise theirs",
			"etcd_max_txn_ops", c.cfg.MaxTxnOps, "now", DefaultMaxTxnOps)
	}
	return true
}

// requestOverheadBytes is what etcd's gRPC server takes beyond its --max-request-bytes (etcd's
// grpcOverheadBytes): a request up to that much larger reaches etcd, which refuses it itself.
const requestOverheadBytes = 512 << 10

// maxRequestBytes is the etcd --max-request-bytes this client assumes now: Config.MaxRequestBytes,
// or DefaultMaxRequestBytes once etcd refused a larger request.
func (c *Client) maxRequestBytes() int64 {
	if cp := c.requestBytesCap.Load(); cp > 0 {
		return min(cp, c.cfg.MaxRequestBytes)
	}
	return c.cfg.MaxRequestBytes
}

// txnBytes is the budget of a packed Txn's estimated size (keys, values, txnOpBytes per compare or
// operation) under etcd's --max-request-bytes of requestBytes: 2/3 of it, which leaves room for
// the estimate's error (1 MiB of etcd's default 1.5 MiB).
func txnBytes(requestBytes int64) int { return int(requestBytes / 3 * 2) }

// txnLimits is what Txns are packed to: operations, and the etcd --max-request-bytes assumed.
type txnLimits struct {
	ops          int
	requestBytes int64
}

// bytes is the budget of a Txn's estimated size (txnBytes).
func (l txnLimits) bytes() int { return txnBytes(l.requestBytes) }

// limits are the client's limits now (maxTxnOps, maxRequestBytes).
func (c *Client) limits() txnLimits {
	return txnLimits{ops: c.maxTxnOps(), requestBytes: c.maxRequestBytes()}
}

// isRequestTooLarge tells whether etcd refused a request as larger than its --max-request-bytes,
// before proposing it: nothing of it was applied. etcd refuses it in one of two ways, by size:
//   - up to requestOverheadBytes more, etcd reads it and answers "etcdserver: request is too large"
//     (InvalidArgument), which the client translates into rpctypes.ErrRequestTooLarge; a status
//     passed on as it came (by a test's hook, say) is recognised by its code and message, as the
//     client does;
//   - larger, etcd's gRPC server refuses it unread: ResourceExhausted, "grpc: received message
//     larger than max (N vs. M)".
//
// gRPC's limit in the client itself refuses it unsent, ResourceExhausted "trying to send message
// larger than max (N vs. M)": Connect sets that limit to what etcd's gRPC server would take at
// Config.MaxRequestBytes, so a request it refuses would have been refused by such an etcd.
// (Answers are not limited: a client refusing an answer of a Txn that applied is not this.)
func isRequestTooLarge(err error) bool {
	if errors.Is(err, rpctypes.ErrRequestTooLarge) {
		return true
	}
	var se interface{ GRPCStatus() *status.Status }
	if !errors.As(err, &se) {
		return false
	}
	st := se.GRPCStatus()
	switch st.Code() {
	case codes.InvalidArgument:
		return st.Message() == rpctypes.ErrorDesc(rpctypes.ErrGRPCRequestTooLarge)
	case codes.ResourceExhausted:
		msg := strings.TrimPrefix(st.Message(), "grpc: ")
		return strings.HasPrefix(msg, "received message larger than max (") || strings.HasPrefix(msg, "trying to send message larger than max (")
	}
	return false
}

// fallBackRequestBytes is called when etcd refused, as too large, a Txn packed for an etcd
// --max-request-bytes of limit: Config.MaxRequestBytes exceeds the --max-request-bytes of the
// member that answered. etcd checks the size as the request arrives, before proposing it, so
// nothing of that Txn was applied and its operations may be sent again in smaller Txns. Rather than
// fail every commit until someone notices, the client falls back to DefaultMaxRequestBytes, etcd's
// own default, for good (one warning). It reports whether packing again can help: not when limit
// was DefaultMaxRequestBytes or less already (an etcd configured below its default, or a Txn too
// large by itself).
func (c *Client) fallBackRequestBytes(limit int64) bool {
	if limit <= DefaultMaxRequestBytes {
		return false
	}
	if c.requestBytesCap.CompareAndSwap(0, DefaultMaxRequestBytes) {
		c.log.Warn("etcd refused a Txn as larger than its --max-request-bytes allows; packing Txns to etcd's default from now on, "+
			"at a cost in Txns per flush: set --etcd-max-request-bytes (Config.MaxRequestBytes) to the etcd servers' --max-request-bytes, or raise theirs",
			"etcd_max_request_bytes", c.cfg.MaxRequestBytes, "now", DefaultMaxRequestBytes)
	}
	return true
}

// fallBack is called when a Txn packed to lim, of about size bytes (as estimated), failed with err.
// If etcd refused it, before applying anything, for more operations or more bytes than it allows,
// the client lowers that limit (fallBackTxnOps, fallBackRequestBytes); fallBack reports whether
// packing it again can help. A Txn larger than lim allows (one partition's commit, or one operation
// of a group write, too large by itself) says nothing of etcd's limit, and leaves the client's alone.
func (c *Client) fallBack(err error, lim txnLimits, size int) bool {
	switch {
	case isTooManyOps(err):
		return c.fallBackTxnOps(lim.ops)
	case isRequestTooLarge(err):
		return size <= lim.bytes() && c.fallBackRequestBytes(lim.requestBytes)
	}
	return false
}

// explainRefused says, of a Txn packed to lim, of about size bytes, that etcd refused for too many
// operations or bytes and that the client could not pack smaller, which limit it was packed to.
func explainRefused(err error, lim txnLimits, size int) error {
	switch {
	case isTooManyOps(err):
		return fmt.Errorf("%w (etcd's --max-txn-ops is below %d, what this Txn was packed to)", err, lim.ops)
	case isRequestTooLarge(err):
		return fmt.Errorf("%w (a Txn of about %d bytes, packed for an etcd --max-request-bytes of %d)", err, size, lim.requestBytes)
	}
	return err
}

// Etcd is the underlying etcd client, an escape hatch for tests and tools.
func (c *Client) Etcd() *clientv3.Client { return c.etcd }

// Prefix is the key prefix this client works under (always ending in "/").
func (c *Client) Prefix() string { return c.cfg.Prefix }
