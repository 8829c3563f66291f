package agent

import (
	"github.com/prometheus/client_golang/prometheus"
)

// lsoCollector exports, with Config.Transactions, how far open transactions hold
// read_committed consumers back on the partitions this agent leads: the largest lag (high watermark
// minus last stable offset) and how many partitions have one. Two series whatever the partition
// count; the partition itself is what DescribeProducers (its open transactions' first offsets) and
// `streamhouse txn list` then find. A scrape derives each led partition's last stable offset from the
// view as a read_committed fetch does (O(producers + uncompacted entries) per partition).
type lsoCollector struct {
	a             *Agent
	lagMax, stuck *prometheus.Desc
}

func newLSOCollector(a *Agent) *lsoCollector {
	return &lsoCollector{a: a,
		lagMax: prometheus.NewDesc("streamhouse_txn_lso_lag_max",
			"Largest high watermark minus last stable offset (records held back from read_committed consumers by open transactions) over the partitions this agent leads.", nil, nil),
		stuck: prometheus.NewDesc("streamhouse_txn_unstable_partitions",
			"Partitions this agent leads whose last stable offset is below their high watermark (an open transaction holds it).", nil, nil)}
}

func (c *lsoCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.lagMax; ch <- c.stuck }

func (c *lsoCollector) Collect(ch chan<- prometheus.Metric) {
	lagMax, stuck := c.a.lsoLag()
	ch <- prometheus.MustNewConstMetric(c.lagMax, prometheus.GaugeValue, float64(lagMax))
	ch <- prometheus.MustNewConstMetric(c.stuck, prometheus.GaugeValue, float64(stuck))
}

// lsoLag is the largest high watermark minus last stable offset over the partitions a leads, and how
// many of them have a lag.
func (a *Agent) lsoLag() (lagMax int64, stuck int) {
	if a.lead == nil { // a scrape before New finished wiring
		return 0, 0
	}
	for _, pl := range a.lead.leaders.snapshot() {
		hwm := a.cache.HighWatermark(pl.tp)
		lso, _ := a.cache.TxnState(pl.tp, hwm)
		if lag := hwm - lso; lag > 0 {
			lagMax, stuck = max(lagMax, lag), stuck+1
		}
	}
	return lagMax, stuck
}
