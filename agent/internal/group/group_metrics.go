package group

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// groupLagCollector exports streamhouse_group_lag for the groups this agent coordinates: each
// committed partition's high watermark minus its committed offset.
type groupLagCollector struct {
	gc   *Coordinator
	desc *prometheus.Desc
}

func newGroupLagCollector(gc *Coordinator) *groupLagCollector {
	return &groupLagCollector{gc: gc, desc: prometheus.NewDesc("streamhouse_group_lag",
		"Records between a consumer group's committed offset and the partition's high watermark, for the groups this agent coordinates.",
		[]string{"group", "topic", "partition"}, nil)}
}

func (c *groupLagCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *groupLagCollector) Collect(ch chan<- prometheus.Metric) {
	for _, sh := range c.gc.loadedShards() {
		for _, g := range sh.list() {
			g.mu.Lock()
			offs := g.committedOffsets()
			g.mu.Unlock()
			for _, o := range offs {
				t, ok := c.gc.view.TopicByID(o.Topic)
				if !ok || o.Partition >= t.Partitions {
					continue
				}
				lag := max(0, c.gc.view.HighWatermark(o.TP())-o.Offset)
				ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(lag),
					g.name, t.Name, strconv.Itoa(int(o.Partition)))
			}
		}
	}
}
