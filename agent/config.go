package agent

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
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
	DefaultOffsetsRetention          = 7 * 24 * time.Hour // Kafka's offsets.retention.minutes
	DefaultOffsetsCheck              = 10 * time.Minute   // Kafka's offsets.retention.check.interval.ms
	defaultAdvertiseHostname         = "127.0.0.1"
)

// Config is an agent's configuration. Start from NewConfig; Validate is called by New.
type Config struct {
	ID    string // unique agent id; registration key agents/<ID>
	AZ    string // availability zone, reported as the broker rack
	Group string // agent group (multi-tenancy)

	KafkaAddr      string // listen address for Kafka clients ("host:0" picks a free port)
	AdvertisedAddr string // address given to clients; default: the bound Kafka address
	HTTPAddr       string // listen address for /healthz, /readyz, /metrics; empty disables HTTP
	// InternalAddr is where other agents have this agent sequence for them (the sequence API, over an
	// authenticated connection). Empty: no internal listener, and no agent forwards to this one.
	InternalAddr string

	FlushInterval    time.Duration // longest a produce waits for its flush
	FlushBytes       int64         // a flush starts once this many bytes are buffered
	MaxBufferedBytes int64         // produce waits (backpressure) past this many buffered bytes
	CacheBytes       int64         // read cache (LRU) size
	MaxRequestBytes  int32         // largest Kafka request frame accepted
	// MaxDecompressedBatchBytes is the most a compressed produce batch may decompress to; past it the
	// batch is refused with MESSAGE_TOO_LARGE.
	MaxDecompressedBatchBytes int64
	LeaseTTL                  time.Duration // etcd session lease TTL: the heartbeat timeout

	AutoCreateTopics  bool  // create unknown topics on Metadata/Produce, as Kafka's auto.create.topics.enable
	DefaultPartitions int32 // partitions of auto-created topics and CreateTopics with -1

	// OffsetsRetention is how long a consumer group's committed offsets outlive the group's last
	// member (or, for a group that never had members, their commit), as Kafka's
	// offsets.retention.minutes; 0 keeps them forever.
	OffsetsRetention time.Duration
	// OffsetsRetentionCheckInterval is how often each coordinator shard looks for expired offsets,
	// as Kafka's offsets.retention.check.interval.ms.
	OffsetsRetentionCheckInterval time.Duration

	Version string // reported in the registration

	Logger     hclog.Logger
	Registerer prometheus.Registerer // agent metrics; nil disables them
	Gatherer   prometheus.Gatherer   // served on /metrics; nil serves an empty registry
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
		OffsetsRetentionCheckInterval: DefaultOffsetsCheck,
		DefaultPartitions:             DefaultPartitions,
		OffsetsRetention:              DefaultOffsetsRetention,
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
	case c.DefaultPartitions <= 0:
		return fmt.Errorf("agent: default partitions must be positive, got %d", c.DefaultPartitions)
	case c.OffsetsRetention < 0:
		return fmt.Errorf("agent: offsets retention must not be negative, got %v", c.OffsetsRetention)
	case c.OffsetsRetentionCheckInterval <= 0:
		return fmt.Errorf("agent: offsets retention check interval must be positive, got %v", c.OffsetsRetentionCheckInterval)
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
