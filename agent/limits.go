package agent

import (
	"math"

	"github.com/prometheus/client_golang/prometheus"
)

// Names of the limits, the values of streamhouse_limit_hits_total's label: the flags' names.
const (
	limitMaxConnections        = "max_connections"
	limitMaxConnectionsPerIP   = "max_connections_per_ip"
	limitConnectionsMaxIdle    = "connections_max_idle"
	limitFrameTimeout          = "frame_timeout"
	limitQueuedMaxRequestBytes = "queued_max_request_bytes"
	limitDecodeBound           = "decode_bound"
	limitFetchMaxWait          = "fetch_max_wait"
	limitPartitionsPerRequest  = "max_partitions_per_request"
	limitPartitions            = "max_partitions"
	limitProducerIDs           = "max_producer_ids_per_partition"
	limitUnknownProducerID     = "unknown_producer_id"
	limitGroupMaxSize          = "group_max_size"
	limitZoneLabels            = "zone_labels"
)

var limitNames = []string{limitMaxConnections, limitMaxConnectionsPerIP, limitConnectionsMaxIdle, limitFrameTimeout,
	limitQueuedMaxRequestBytes, limitDecodeBound, limitFetchMaxWait, limitPartitionsPerRequest, limitPartitions,
	limitProducerIDs, limitUnknownProducerID, limitGroupMaxSize, limitZoneLabels}

// newLimitHits is streamhouse_limit_hits_total, every label value initialised.
func newLimitHits() *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_limit_hits_total",
		Help: "Times a limit refused, closed, waited, capped or folded something a client asked for, by limit (docs/OPERATING.md, Limits).",
	}, []string{"limit"})
	for _, n := range limitNames {
		v.WithLabelValues(n)
	}
	return v
}

// limitHit counts one hit of the named limit.
func (a *Agent) limitHit(name string) { a.metrics.limitHits.WithLabelValues(name).Inc() }

// MaxConnectionsForFileLimit is the connection cap a Config.MaxConnections of 0 stands for: the
// process's open-file limit less a quarter of it (at least 64), which stays for etcd, S3, the embedded
// servers of dev mode and files. A flood of connections then meets the cap, which it can wait at,
// before EMFILE, which fails whatever needed a descriptor. 0 (no cap) when the limit is unknown or
// unlimited.
func MaxConnectionsForFileLimit() int {
	n := openFileLimit()
	if n == 0 || n > math.MaxInt32 {
		return 0
	}
	reserve := max(n/4, 64)
	if n <= reserve {
		return 1
	}
	return int(n - reserve)
}
