package agent

import (
	"context"
	"math"
	"strconv"
	"time"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/agent/internal/lifecycle"
	"github.com/streamhouse/streamhouse/coord"
)

// The agent runs two lifecycle loops (package lifecycle, docs/INTERNALS.md "Lifecycle"): the
// maintenance of the partitions it leads (merges and retention, fenced by their epochs), and, while it
// holds the cluster's GC key, garbage collection.

// maintenanceConcurrency bounds the partitions maintained at once: a tail merge holds its segment in
// memory (lifecycle.DefaultMergeInput), a level merge a chunk of it.
const maintenanceConcurrency = 2

// newLifecycle wires the maintainer and the garbage collector.
func (a *Agent) newLifecycle() {
	m := lifecycle.NewMetrics(a.cfg.Registerer)
	a.maintainer = lifecycle.NewMaintainer(lifecycle.MaintainConfig{
		AgentID: a.cfg.ID, Grace: a.cfg.GCGrace, Policy: a.topicPolicy, ProducerExpiration: a.cfg.ProducerIDExpiration,
		MaxProducers: a.cfg.MaxProducerIDsPerPartition, PrefetchBytes: a.cfg.CacheBytes / 4,
		CleanerMemory: a.cfg.CleanerMemory, MaxBatchBytes: a.cfg.MaxDecompressedBatchBytes,
		Marker: markerBatch,
		Busy:   func() bool { return a.flusher.saturated(time.Now()) },
		Patch: func(dst, src []byte, base int64, epoch int32) ([]byte, int64, error) {
			return kwire.PatchBatches(dst, src, base, epoch, 0)
		},
		Logger: a.log.Named("lifecycle"), Metrics: m,
	}, a.cache, a.reader, a.store)
	a.gc = lifecycle.NewGC(lifecycle.GCConfig{Grace: a.cfg.GCGrace, ReadGrace: a.cfg.GCReadGrace,
		Logger: a.log.Named("gc"), Metrics: m}, a.store, a.cache, a.etcd)
	a.lifecycleMetrics = m
}

// leads lists the partitions this agent leads, for their maintenance, and the session they are led
// under (nil without one).
func (a *Agent) leads() ([]lifecycle.Lead, lifecycle.Writer) {
	s := a.lead.session()
	if s == nil {
		return nil, nil
	}
	var out []lifecycle.Lead
	for _, pl := range a.lead.leaders.snapshot() {
		if t, ok := a.cache.TopicByID(pl.tp.Topic); ok {
			out = append(out, lifecycle.Lead{TP: pl.tp, Topic: t, Epoch: pl.epoch})
		}
	}
	return out, s
}

// runGC runs a GC pass every GCInterval while this agent holds the cluster's GC key, until ctx ends.
func (a *Agent) runGC(ctx context.Context) {
	t := time.NewTicker(a.cfg.GCInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := a.lead.session()
		if s == nil {
			continue
		}
		held, err := s.CampaignGC(ctx)
		if err != nil || !held {
			continue
		}
		res, err := a.gc.Pass(ctx)
		a.lifecycleMetrics.ObservePassResult(err)
		if err != nil && ctx.Err() == nil {
			a.log.Warn("GC pass failed; the next one tries again", "error", err)
			continue
		}
		a.log.Debug("GC pass", "objects", res.Objects, "unreferenced", res.Unreferenced, "deleted", res.Deleted,
			"dead_records", res.DeadRecords)
	}
}

// topicPolicy is a topic's maintenance policy: its retention.ms, retention.bytes, segment.bytes and
// segment.ms, or the cluster's defaults.
func (a *Agent) topicPolicy(t coord.Topic) lifecycle.Policy {
	p := lifecycle.DefaultPolicy()
	p.RetentionTime, p.RetentionBytes = a.cfg.DefaultRetention, a.cfg.DefaultRetentionBytes
	if ms, ok := configInt(t, configRetentionMs); ok {
		p.RetentionTime = time.Duration(ms) * time.Millisecond
		if ms < 0 {
			p.RetentionTime = -1
		}
	}
	if n, ok := configInt(t, configRetentionBytes); ok {
		p.RetentionBytes = n
	}
	if n, ok := configInt(t, configSegmentBytes); ok && n > 0 {
		p.MaxBytes = n
	}
	if ms, ok := configInt(t, configSegmentMs); ok && ms > 0 {
		p.MaxSpan = time.Duration(ms) * time.Millisecond
	}
	policy := t.Configs[configCleanupPolicy]
	if policyCompacts(policy) {
		p.Compaction = topicCompaction(t)
		if !policyDeletes(policy) { // Kafka applies retention.* only with delete
			p.RetentionTime, p.RetentionBytes = -1, -1
		}
	}
	return p
}

// topicCompaction is a compacted topic's cleaner policy from its configs.
func topicCompaction(t coord.Topic) *lifecycle.Compaction {
	c := lifecycle.DefaultCompaction()
	if ms, ok := configInt(t, configMinCompactionLagMs); ok && ms >= 0 {
		c.MinLag = time.Duration(ms) * time.Millisecond
	}
	if ms, ok := configInt(t, configMaxCompactionLagMs); ok && ms > 0 && ms < math.MaxInt64/int64(time.Millisecond) {
		c.MaxLag = time.Duration(ms) * time.Millisecond
	}
	if ms, ok := configInt(t, configDeleteRetentionMs); ok && ms >= 0 && ms < math.MaxInt64/int64(time.Millisecond) {
		c.DeleteRetention = time.Duration(ms) * time.Millisecond
	}
	if v, ok := t.Configs[configMinCleanableRatio]; ok {
		if r, err := strconv.ParseFloat(v, 64); err == nil {
			c.MinDirtyRatio = r
		}
	}
	return &c
}

// configInt is a topic config's integer value, if it sets one.
func configInt(t coord.Topic, name string) (int64, bool) {
	v, ok := t.Configs[name]
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}
