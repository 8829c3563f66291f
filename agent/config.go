package agent

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/extcache"
	"github.com/streamhouse/streamhouse/agent/internal/group"
	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// Defaults for Config.
const (
	DefaultGroup         = "default"
	DefaultKafkaAddr     = "127.0.0.1:9092"
	DefaultHTTPAddr      = "127.0.0.1:8080"
	DefaultInternalAddr  = "127.0.0.1:9192" // 100 above Kafka's: dev mode's agents take 9092 and up
	DefaultFlushInterval = 100 * time.Millisecond
	// DefaultFlushBytes stays under what one producer can have in flight to one partition (Kafka clients
	// keep at most five requests in flight and a partition's batch under 1 MB): with more, a lone fast
	// producer waits for the flush interval every five requests (measured: 46 MiB/s with 8 MiB).
	DefaultFlushBytes       = 4 << 20
	DefaultCacheBytes       = 256 << 20
	DefaultMaxBufferedBytes = 64 << 20
	DefaultLeaseTTL         = 10 * time.Second
	DefaultPartitions       = 1
	DefaultMaxMessageBytes  = 1048588 // Kafka's default max.message.bytes
	DefaultMaxRequestBytes  = 100 << 20
	// DefaultMaxDecompressedBatchBytes bounds what one compressed produce batch may decompress to while
	// it is validated: 64 times Kafka's default max.message.bytes, far beyond what compression gives
	// real records, and a 64 MiB bound on the work a zip bomb costs (franz-go consumers refuse a batch
	// over 1 GiB).
	DefaultMaxDecompressedBatchBytes = 64 << 20
	DefaultShutdownTimeout           = 10 * time.Second
	DefaultOffsetsRetention          = group.DefaultRetention      // Kafka's offsets.retention.minutes
	DefaultOffsetsCheck              = group.DefaultRetentionCheck // Kafka's offsets.retention.check.interval.ms
)

// Defaults for Config's bounds on fetch reads.
const (
	// DefaultFetchReadTimeout keeps a fetch's answer far inside every client's request timeout
	// (franz-go: MaxWait + 10 s; librdkafka: 60 s; Java: 30 s) while leaving a slow GET time to land.
	DefaultFetchReadTimeout = 2 * time.Second
	// DefaultMaxReadBytesInFlight is the default cache's size: reads in flight land in the cache, and
	// more than it holds would evict each other.
	DefaultMaxReadBytesInFlight = 256 << 20
)

// Defaults for Config's lifecycle settings (docs/INTERNALS.md, "Lifecycle").
const (
	DefaultRetention            = 7 * 24 * time.Hour // Kafka's log.retention.hours
	DefaultRetentionBytes       = -1                 // Kafka's log.retention.bytes: no limit
	DefaultProducerIDExpiration = 24 * time.Hour     // Kafka's producer.id.expiration.ms
	DefaultCleanerMemory        = 64 << 20           // a compacted partition's clean's key map
	DefaultMaintenanceInterval  = time.Second
	DefaultGCInterval           = time.Minute
	DefaultGCGrace              = 10 * time.Minute
	DefaultGCReadGrace          = 2 * time.Minute
)

// minGCGrace and minGCReadGrace are the least GCGrace and GCReadGrace (see Config.Validate).
const (
	minGCGrace     = time.Minute
	minGCReadGrace = extcache.ReadTimeout
)

// Defaults of the limits that keep one client from exhausting an agent (docs/OPERATING.md, "Limits").
// Where Kafka has the limit, its name is in the comment; where Kafka's default is unlimited, these are
// finite, and say why.
const (
	// DefaultMaxConnections (max.connections) 0 derives the cap from the open-file limit
	// (MaxConnectionsForFileLimit): past that, accept fails with EMFILE anyway, and the descriptors
	// left are what etcd and S3 need.
	DefaultMaxConnections = 0
	// DefaultMaxConnectionsPerIP (max.connections.per.ip) 0 is Kafka's unlimited: clients behind one
	// NAT share an address.
	DefaultMaxConnectionsPerIP = 0
	DefaultConnectionsMaxIdle  = 10 * time.Minute // connections.max.idle.ms
	// DefaultFrameTimeout bounds a frame from its first byte to its last: Kafka clients give up on a
	// request after request.timeout.ms, 30 s by default, so a frame slower than that is not a client's.
	DefaultFrameTimeout = 30 * time.Second
	// DefaultQueuedMaxRequestBytes (queued.max.request.bytes; Kafka's is unlimited) must be at least 2.5
	// times MaxRequestBytes: a Produce frame is charged for its bytes and what decoding it may take.
	DefaultQueuedMaxRequestBytes = 256 << 20
	// DefaultFetchMaxWait caps a fetch's MaxWaitMillis; clients ask 0.5 s (Java, librdkafka) to 5 s
	// (franz-go), and one that waits longer than its request timeout (30 s) has given up on the answer.
	DefaultFetchMaxWait = 30 * time.Second
	// DefaultMaxPartitionsPerRequest is what Kafka's controller allows one CreateTopics or
	// CreatePartitions to create.
	DefaultMaxPartitionsPerRequest = 10000
	// DefaultMaxPartitions bounds the cluster's partitions: each is etcd keys, a leader and leadership
	// work on some agent (100,000 took one agent 545 MB and 35 s of leadership work).
	DefaultMaxPartitions = 20000
	// DefaultMaxProducerIDsPerPartition bounds the idempotent producers whose state a partition keeps
	// (in etcd, and in its leader's memory); past it the least recently written one is forgotten.
	DefaultMaxProducerIDsPerPartition = 1000
	// DefaultGroupMaxSize (group.max.size; Kafka's is unlimited) bounds a consumer group's members: the
	// group's metadata, members and their assignments, is one etcd value.
	DefaultGroupMaxSize = group.DefaultMaxSize
)

// Config is an agent's configuration. Start from NewConfig; Validate is called by New.
type Config struct {
	ID    string // unique agent id; registration key agents/<ID>
	AZ    string // availability zone, reported as the broker rack
	Group string // agent group (multi-tenancy)

	KafkaAddr      string // listen address for Kafka clients ("host:0" picks a free port)
	AdvertisedAddr string // address given to clients; default: the bound Kafka address
	HTTPAddr       string // listen address for /healthz, /readyz, /metrics; empty disables HTTP
	// MetricsAddr, when set, serves /metrics (and /healthz, /readyz) on a listener of its own, plain
	// and without authentication, instead of on HTTPAddr: for an interface only scrapers reach.
	MetricsAddr string
	// InternalAddr is where other agents have this agent sequence for them (the sequence API, over an
	// authenticated connection). Empty: no internal listener, and no agent forwards to this one.
	InternalAddr string
	// Listeners are the Kafka client listeners; empty: one PLAINTEXT listener on KafkaAddr,
	// advertised as AdvertisedAddr. Security secures them (listener_config.go).
	Listeners []ListenerConfig
	Security  SecurityConfig

	FlushInterval    time.Duration // longest a produce waits for its flush
	FlushBytes       int64         // a flush starts once this many bytes are buffered
	MaxBufferedBytes int64         // produce waits (backpressure) past this many buffered bytes
	CacheBytes       int64         // read cache (LRU) size
	MaxRequestBytes  int32         // largest Kafka request frame accepted
	// MaxDecompressedBatchBytes is the most a compressed produce batch may decompress to; past it the
	// batch is refused with MESSAGE_TOO_LARGE.
	MaxDecompressedBatchBytes int64
	LeaseTTL                  time.Duration // etcd session lease TTL: the heartbeat timeout

	// FetchReadTimeout bounds how long a fetch waits for object store reads past its MaxWait: it then
	// answers with what it has read, and the reads go on into the cache for the next fetch.
	FetchReadTimeout time.Duration
	// MaxReadBytesInFlight bounds the bytes of object store reads under way at once, those of fetches
	// that have answered without them included; past it, reads ahead are not started and a fetch's own
	// wait for room (within its read bound). One read larger than it goes alone.
	MaxReadBytesInFlight int64

	// Transactions serves Kafka transactions (docs/INTERNALS.md, "Transactions"): the transaction
	// coordinator (InitProducerID with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
	// TxnOffsetCommit, Describe/ListTransactions, FindCoordinator for transactions), markers, the last
	// stable offset and read_committed fetch, advertised in ApiVersions. The zero Config leaves it off;
	// the streamhouse command turns it on unless --transactions=false.
	Transactions bool

	AutoCreateTopics  bool  // create unknown topics on Metadata/Produce, as Kafka's auto.create.topics.enable
	DefaultPartitions int32 // partitions of auto-created topics and CreateTopics with -1

	// OffsetsRetention is how long a consumer group's committed offsets outlive the group's last
	// member (or, for a group that never had members, their commit), as Kafka's
	// offsets.retention.minutes; 0 keeps them forever.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheckInterval is how often each coordinator shard looks for expired offsets,
	// as Kafka's offsets.retention.check.interval.ms.
	OffsetsRetentionCheckInterval time.Duration

	// DefaultRetention and DefaultRetentionBytes are retention.ms and retention.bytes for topics that
	// do not set them (Kafka's log.retention.ms, log.retention.bytes); negative keeps forever.
	DefaultRetention      time.Duration
	DefaultRetentionBytes int64
	// ProducerIDExpiration forgets an idempotent producer idle this long on a partition (Kafka's
	// producer.id.expiration.ms).
	ProducerIDExpiration time.Duration
	// CleanerMemory bounds the key map of a compacted partition's clean, in bytes (one clean at a time
	// per agent; docs/INTERNALS.md, "The key map").
	CleanerMemory int64
	// MaintenanceInterval is how often the led partitions' maintenance (merges, retention) runs.
	MaintenanceInterval time.Duration
	// GCInterval is how often the cluster's one garbage collector runs; GCGrace the age under which an
	// object is never deleted (a flush or merge commits its object within half of it, or not at all);
	// GCReadGrace how long an object stays after GC first finds it unreferenced (reads of it end first).
	GCInterval  time.Duration
	GCGrace     time.Duration
	GCReadGrace time.Duration
	Limits

	Version string // reported in the registration

	Logger     hclog.Logger
	Registerer prometheus.Registerer // agent metrics; nil disables them
	Gatherer   prometheus.Gatherer   // served on /metrics; nil serves an empty registry
	// ConsoleMiddleware wraps every handler of the web console on the HTTP port (console.Config.Middleware):
	// where the port's authentication goes. nil: none.
	ConsoleMiddleware func(http.Handler) http.Handler
}

// Limits keep one client from exhausting an agent; Kafka's names are in the comments.
type Limits struct {
	MaxConnections        int           // max.connections; 0: MaxConnectionsForFileLimit
	MaxConnectionsPerIP   int           // max.connections.per.ip; 0: none
	ConnectionsMaxIdle    time.Duration // connections.max.idle.ms
	FrameTimeout          time.Duration // a request frame's first byte to its last
	QueuedMaxRequestBytes int64         // queued.max.request.bytes: bytes of requests read or handled
	FetchMaxWait          time.Duration // cap on a fetch's MaxWaitMillis
	// MaxPartitionsPerRequest and MaxPartitions bound what CreateTopics and CreatePartitions create:
	// in one request, and in the cluster.
	MaxPartitionsPerRequest    int32
	MaxPartitions              int32
	MaxProducerIDsPerPartition int // idempotent producers whose state a partition keeps
	GroupMaxSize               int // group.max.size
}

// NewLimits returns the default limits.
func NewLimits() Limits {
	return Limits{
		MaxConnections:             DefaultMaxConnections,
		MaxConnectionsPerIP:        DefaultMaxConnectionsPerIP,
		ConnectionsMaxIdle:         DefaultConnectionsMaxIdle,
		FrameTimeout:               DefaultFrameTimeout,
		QueuedMaxRequestBytes:      DefaultQueuedMaxRequestBytes,
		FetchMaxWait:               DefaultFetchMaxWait,
		MaxPartitionsPerRequest:    DefaultMaxPartitionsPerRequest,
		MaxPartitions:              DefaultMaxPartitions,
		MaxProducerIDsPerPartition: DefaultMaxProducerIDsPerPartition,
		GroupMaxSize:               DefaultGroupMaxSize,
	}
}

// validate reports the first invalid limit; maxRequestBytes is the Config's.
func (l *Limits) validate(maxRequestBytes int32) error {
	switch {
	case l.MaxConnections < 0 || l.MaxConnectionsPerIP < 0:
		return fmt.Errorf("agent: max connections (%d) and max connections per IP (%d) must not be negative",
			l.MaxConnections, l.MaxConnectionsPerIP)
	case l.ConnectionsMaxIdle <= 0 || l.FrameTimeout <= 0 || l.FetchMaxWait <= 0:
		return fmt.Errorf("agent: connections max idle (%v), frame timeout (%v) and fetch max wait (%v) must be positive",
			l.ConnectionsMaxIdle, l.FrameTimeout, l.FetchMaxWait)
	case l.QueuedMaxRequestBytes < kwire.FrameCharge(int16(kmsg.Produce), maxRequestBytes):
		return fmt.Errorf("agent: queued max request bytes (%d) must be at least %d, 2.5 times max request bytes (%d): a produce frame is charged that much",
			l.QueuedMaxRequestBytes, kwire.FrameCharge(int16(kmsg.Produce), maxRequestBytes), maxRequestBytes)
	case l.MaxPartitionsPerRequest <= 0 || l.MaxPartitions <= 0:
		return fmt.Errorf("agent: max partitions per request (%d) and max partitions (%d) must be positive",
			l.MaxPartitionsPerRequest, l.MaxPartitions)
	case l.MaxProducerIDsPerPartition <= 0 || l.GroupMaxSize <= 0:
		return fmt.Errorf("agent: max producer ids per partition (%d) and group max size (%d) must be positive",
			l.MaxProducerIDsPerPartition, l.GroupMaxSize)
	}
	return nil
}

// NewConfig returns a Config with every default set; ID must still be given.
func NewConfig() Config {
	return Config{
		Group:                         DefaultGroup,
		KafkaAddr:                     DefaultKafkaAddr,
		HTTPAddr:                      DefaultHTTPAddr,
		InternalAddr:                  DefaultInternalAddr,
		FlushInterval:                 DefaultFlushInterval,
		FlushBytes:                    DefaultFlushBytes,
		MaxBufferedBytes:              DefaultMaxBufferedBytes,
		CacheBytes:                    DefaultCacheBytes,
		MaxRequestBytes:               DefaultMaxRequestBytes,
		MaxDecompressedBatchBytes:     DefaultMaxDecompressedBatchBytes,
		LeaseTTL:                      DefaultLeaseTTL,
		FetchReadTimeout:              DefaultFetchReadTimeout,
		MaxReadBytesInFlight:          DefaultMaxReadBytesInFlight,
		OffsetsRetentionCheckInterval: DefaultOffsetsCheck,
		DefaultPartitions:             DefaultPartitions,
		OffsetsRetention:              DefaultOffsetsRetention,
		DefaultRetention:              DefaultRetention,
		DefaultRetentionBytes:         DefaultRetentionBytes,
		ProducerIDExpiration:          DefaultProducerIDExpiration,
		CleanerMemory:                 DefaultCleanerMemory,
		MaintenanceInterval:           DefaultMaintenanceInterval,
		GCInterval:                    DefaultGCInterval,
		GCGrace:                       DefaultGCGrace,
		GCReadGrace:                   DefaultGCReadGrace,
		Limits:                        NewLimits(),
		Version:                       "dev",
	}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	switch {
	case c.ID == "":
		return errors.New("agent: id is required")
	case c.Group == "":
		return errors.New("agent: group is required")
	case c.FlushInterval <= 0:
		return fmt.Errorf("agent: flush interval must be positive, got %v", c.FlushInterval)
	case c.FlushBytes <= 0:
		return fmt.Errorf("agent: flush bytes must be positive, got %d", c.FlushBytes)
	case c.MaxBufferedBytes < c.FlushBytes:
		return fmt.Errorf("agent: max buffered bytes (%d) must be at least flush bytes (%d)", c.MaxBufferedBytes, c.FlushBytes)
	case c.CacheBytes < 0:
		return fmt.Errorf("agent: cache bytes must not be negative, got %d", c.CacheBytes)
	case c.MaxRequestBytes <= 0:
		return fmt.Errorf("agent: max request bytes must be positive, got %d", c.MaxRequestBytes)
	case c.MaxDecompressedBatchBytes <= 0:
		return fmt.Errorf("agent: max decompressed batch bytes must be positive, got %d", c.MaxDecompressedBatchBytes)
	case c.LeaseTTL < time.Second:
		return fmt.Errorf("agent: lease TTL must be at least 1s, got %v", c.LeaseTTL)
	case c.FetchReadTimeout <= 0:
		return fmt.Errorf("agent: fetch read timeout must be positive, got %v", c.FetchReadTimeout)
	case c.MaxReadBytesInFlight <= 0:
		return fmt.Errorf("agent: max read bytes in flight must be positive, got %d", c.MaxReadBytesInFlight)
	case c.DefaultPartitions <= 0:
		return fmt.Errorf("agent: default partitions must be positive, got %d", c.DefaultPartitions)
	case c.OffsetsRetention < 0:
		return fmt.Errorf("agent: offsets retention must not be negative, got %v", c.OffsetsRetention)
	case c.OffsetsRetentionCheckInterval <= 0:
		return fmt.Errorf("agent: offsets retention check interval must be positive, got %v", c.OffsetsRetentionCheckInterval)
	case c.ProducerIDExpiration <= 0:
		return fmt.Errorf("agent: producer id expiration must be positive, got %v", c.ProducerIDExpiration)
	case c.MaintenanceInterval <= 0 || c.GCInterval <= 0:
		return fmt.Errorf("agent: maintenance and GC intervals must be positive, got %v and %v", c.MaintenanceInterval, c.GCInterval)
	case c.GCGrace < minGCGrace:
		// A flush must commit its object within half the grace: its PUT, its commit's attempts
		// (coord's 10 s) and a forward's queue (30 s) fit well within a minute's half.
		return fmt.Errorf("agent: GC grace must be at least %v, got %v", minGCGrace, c.GCGrace)
	case c.GCReadGrace < minGCReadGrace:
		// A read that began before an object lost its last reference ends within its GET's timeout.
		return fmt.Errorf("agent: GC read grace must be at least %v, got %v", minGCReadGrace, c.GCReadGrace)
	}
	if err := c.Limits.validate(c.MaxRequestBytes); err != nil {
		return err
	}
	if err := c.validateSecurity(); err != nil {
		return err
	}
	if _, _, err := net.SplitHostPort(c.KafkaAddr); err != nil {
		return fmt.Errorf("agent: kafka address %q: %w", c.KafkaAddr, err)
	}
	if c.AdvertisedAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertisedAddr); err != nil {
			return fmt.Errorf("agent: advertised address %q: %w", c.AdvertisedAddr, err)
		}
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
			return fmt.Errorf("agent: http address %q: %w", c.HTTPAddr, err)
		}
	}
	if c.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return fmt.Errorf("agent: metrics address %q: %w", c.MetricsAddr, err)
		}
	}
	if c.InternalAddr != "" {
		if _, _, err := net.SplitHostPort(c.InternalAddr); err != nil {
			return fmt.Errorf("agent: internal address %q: %w", c.InternalAddr, err)
		}
	}
	if c.Logger == nil {
		c.Logger = hclog.NewNullLogger()
	}
	return nil
}
