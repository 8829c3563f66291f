package fault

import (
	"context"
	"fmt"
	"time"

	"github.com/streamhouse/streamhouse/e2e/chaos/proxy"
	"github.com/streamhouse/streamhouse/e2e/chaos/s3fault"
)

var pass = proxy.Mode{Kind: proxy.Pass}

// EtcdPartition cuts an agent off from every etcd member (blackhole, reset or half-open) for longer
// than its lease TTL: its session expires, its partitions move; it must stop taking produce at once,
// never commit again under its old epoch, and register again once healed.
type EtcdPartition struct {
	Agent string
	Mode  proxy.Mode
}

func (f *EtcdPartition) Name() string { return NameEtcdPartition }
func (f *EtcdPartition) String() string {
	return fmt.Sprintf("%s %s (%v)", NameEtcdPartition, f.Agent, f.Mode)
}
func (f *EtcdPartition) Inject(ctx context.Context, c Cluster) error {
	return c.SetEtcdLink(f.Agent, f.Mode)
}
func (f *EtcdPartition) Heal(ctx context.Context, c Cluster) error {
	return c.SetEtcdLink(f.Agent, pass)
}

// EtcdLatency slows every request between an agent and etcd: keep-alives, commits and watches lag.
type EtcdLatency struct {
	Agent string
	Delay time.Duration
}

func (f *EtcdLatency) Name() string { return NameEtcdLatency }
func (f *EtcdLatency) String() string {
	return fmt.Sprintf("%s %s (+%v each way)", NameEtcdLatency, f.Agent, f.Delay)
}
func (f *EtcdLatency) Inject(ctx context.Context, c Cluster) error {
	return c.SetEtcdLink(f.Agent, proxy.Mode{Kind: proxy.Latency, Delay: f.Delay})
}
func (f *EtcdLatency) Heal(ctx context.Context, c Cluster) error { return c.SetEtcdLink(f.Agent, pass) }

// S3Partition cuts an agent off from S3: its flushes fail (produce answers an error clients retry)
// while it keeps its leaderships; fetches of what it has cached go on.
type S3Partition struct {
	Agent string
	Mode  proxy.Mode
}

func (f *S3Partition) Name() string { return NameS3Partition }
func (f *S3Partition) String() string {
	return fmt.Sprintf("%s %s (%v)", NameS3Partition, f.Agent, f.Mode)
}
func (f *S3Partition) Inject(ctx context.Context, c Cluster) error {
	return c.SetS3Link(f.Agent, f.Mode)
}
func (f *S3Partition) Heal(ctx context.Context, c Cluster) error { return c.SetS3Link(f.Agent, pass) }

// S3Errors answers a share of every agent's S3 requests with 503 SlowDown or 500 InternalError.
type S3Errors struct{ Rule s3fault.Rule }

func (f *S3Errors) Name() string   { return NameS3Errors }
func (f *S3Errors) String() string { return fmt.Sprintf("%s (%v)", NameS3Errors, f.Rule) }
func (f *S3Errors) Inject(ctx context.Context, c Cluster) error {
	return c.SetS3Rule(f.Rule)
}
func (f *S3Errors) Heal(ctx context.Context, c Cluster) error { return c.SetS3Rule(s3fault.Rule{}) }

// S3Latency stalls a share of every agent's S3 requests: latency spikes.
type S3Latency struct{ Rule s3fault.Rule }

func (f *S3Latency) Name() string   { return NameS3Latency }
func (f *S3Latency) String() string { return fmt.Sprintf("%s (%v)", NameS3Latency, f.Rule) }
func (f *S3Latency) Inject(ctx context.Context, c Cluster) error {
	return c.SetS3Rule(f.Rule)
}
func (f *S3Latency) Heal(ctx context.Context, c Cluster) error { return c.SetS3Rule(s3fault.Rule{}) }
