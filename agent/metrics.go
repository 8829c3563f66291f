package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamhouse/streamhouse/agent/internal/extcache"
)

// metrics are the agent's own Prometheus series; coord and segstore register theirs.
type metrics struct {
	produceBytes    prometheus.Counter
	recompressed    *prometheus.CounterVec
	produceRecords  prometheus.Counter
	produceLatency  prometheus.Histogram
	produceErrors   *prometheus.CounterVec
	fetchBytes      prometheus.Counter
	fetchRecords    prometheus.Counter
	flushBytes      prometheus.Histogram
	flushAppends    prometheus.Histogram
	flushDuration   *prometheus.HistogramVec
	bufferedBytes   prometheus.Gauge
	cacheHits       prometheus.Counter
	cacheMisses     prometheus.Counter
	cacheBytes      prometheus.Gauge
	corruptExtents  prometheus.Counter
	agentUp         prometheus.Gauge
	leasesHeld      prometheus.Gauge
	partitionEpoch  *prometheus.GaugeVec
	partitionLeader *prometheus.GaugeVec
	writeLatency    prometheus.Histogram
	failovers       prometheus.Counter
	leadRetries     prometheus.Counter
	connections     prometheus.Gauge
	acceptErrors    prometheus.Counter
	requestPanics   prometheus.Counter
	limitHits       *prometheus.CounterVec
	requestBytes    prometheus.Gauge
	zones           *zoneMetrics
	reads           *readMetrics
	trust           *trustMetrics
}

func newMetrics(reg prometheus.Registerer) *metrics {
	latency := prometheus.ExponentialBuckets(0.001, 2, 15) // 1 ms … 16 s
	m := &metrics{
		produceBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_produce_bytes_total", Help: "Record batch bytes acknowledged to producers."}),
		produceRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_produce_records_total", Help: "Records acknowledged to producers."}),
		produceLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_produce_latency_seconds", Help: "Time from receiving a partition's batch to its acknowledgement (S3 and etcd both done).", Buckets: latency}),
		produceErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streamhouse_produce_errors_total", Help: "Partition batches answered with an error, by Kafka error."}, []string{"error"}),
		fetchBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_fetch_bytes_total", Help: "Record batch bytes served to consumers."}),
		fetchRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_fetch_records_total", Help: "Records served to consumers (counted per batch header)."}),
		flushBytes: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_flush_bytes", Help: "Size of each flushed segment object.", Buckets: prometheus.ExponentialBuckets(1024, 4, 10)}),
		flushAppends: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_flush_batches", Help: "Record batches per flushed segment object.", Buckets: prometheus.ExponentialBuckets(1, 4, 8)}),
		flushDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "streamhouse_flush_stage_seconds", Help: "Duration of each flush stage: put (S3) and commit (sequence and fenced etcd Txn).", Buckets: latency}, []string{"stage"}),
		bufferedBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_produce_buffered_bytes", Help: "Produce bytes accepted but not yet acknowledged or failed."}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_cache_hits_total", Help: "Fetch reads served from the agent's cache."}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_cache_misses_total", Help: "Fetch reads that went to the object store."}),
		cacheBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_cache_bytes", Help: "Bytes held by the fetch cache."}),
		corruptExtents: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_fetch_corrupt_total", Help: "Stored extents that failed their CRC or batch framing check and were not served."}),
		agentUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_agent_up", Help: "1 while the agent is registered in etcd and serving."}),
		leasesHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_agent_lease_count", Help: "Partitions this agent leads."}),
		partitionEpoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamhouse_partition_lease_epoch", Help: "Leader epoch (etcd create revision of the leader key) of each partition this agent leads."}, []string{"topic", "partition"}),
		partitionLeader: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "streamhouse_partition_leader", Help: "1 for each partition this agent leads."}, []string{"topic", "partition"}),
		writeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streamhouse_agent_write_latency_seconds", Help: "Time from sealing a flush to its commit: S3 PUT, sequencing and the fenced etcd Txn.", Buckets: latency}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_partition_failover_total", Help: "Partitions this agent took over from a previous leader."}),
		leadRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_leadership_retries_total", Help: "Passes of the leadership loop scheduled again after an acquisition, resignation or partition load failed."}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_kafka_connections", Help: "Open Kafka client connections."}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_kafka_accept_errors_total", Help: "Accept errors of the Kafka listener (such as too many open files), each retried after a backoff."}),
		requestPanics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_request_panics_total", Help: "Requests whose decoding or handling panicked (a bug); each closed its connection."}),
		limitHits: newLimitHits(),
		requestBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_request_bytes_held", Help: "Bytes charged to the budget of requests being read or handled (--queued-max-request-bytes)."}),
	}
	m.recompressed = newRecompressedMetric()
	m.zones = newZoneMetrics()
	m.reads = newReadMetrics()
	m.trust = newTrustMetrics()
	for _, s := range []string{"put", "commit"} {
		m.flushDuration.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.produceBytes, m.produceRecords, m.produceLatency, m.produceErrors, m.fetchBytes,
			m.fetchRecords, m.flushBytes, m.flushAppends, m.flushDuration, m.bufferedBytes, m.cacheHits,
			m.cacheMisses, m.cacheBytes, m.corruptExtents, m.agentUp, m.leasesHeld, m.partitionEpoch, m.partitionLeader, m.writeLatency,
			m.failovers, m.leadRetries, m.connections, m.acceptErrors, m.requestPanics, m.limitHits, m.requestBytes, m.recompressed)
		reg.MustRegister(m.zones.collectors()...)
		reg.MustRegister(m.reads.collectors()...)
		reg.MustRegister(m.trust.collectors()...)
	}
	return m
}

// readMetrics count the object store reads of fetches.
type readMetrics struct {
	inFlight prometheus.Gauge
	deferred prometheus.Counter
	timeouts prometheus.Counter
}

func newReadMetrics() *readMetrics {
	return &readMetrics{
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streamhouse_fetch_read_bytes_in_flight",
			Help: "Bytes of object store reads under way, those of fetches that answered without them included (at most --max-read-bytes-in-flight, or one read)."}),
		deferred: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_fetch_reads_deferred_total",
			Help: "Object store reads not started at once because --max-read-bytes-in-flight were under way: reads ahead dropped, or a fetch's own read waiting for room."}),
		timeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streamhouse_fetch_read_timeouts_total",
			Help: "Partitions a fetch answered short at its read bound (MaxWait plus --fetch-read-timeout), their reads left to land in the cache."}),
	}
}

func (m *readMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.inFlight, m.deferred, m.timeouts}
}

// cacheMetrics are the counters of the extent cache.
func (m *metrics) cacheMetrics() extcache.Metrics {
	return extcache.Metrics{Hits: m.cacheHits, Misses: m.cacheMisses, Bytes: m.cacheBytes, Corrupt: m.corruptExtents,
		InFlight: m.reads.inFlight, Deferred: m.reads.deferred}
}
