package console

import "github.com/prometheus/client_golang/prometheus"

// clusterCollector exports what the watched view says of the whole cluster. Every agent exports the
// same values, so dashboards and alerts take their max; computed at scrape time, it costs nothing
// between scrapes.
type clusterCollector struct {
	view                      View
	agents, parts, leaderless *prometheus.Desc
}

func newClusterCollector(v View) *clusterCollector {
	return &clusterCollector{
		view: v,
		agents: prometheus.NewDesc("streamhouse_cluster_agents",
			"Agents registered in etcd, as this agent's view of the cluster holds them.", nil, nil),
		parts: prometheus.NewDesc("streamhouse_cluster_partitions",
			"Partitions of every topic, internal ones included, in this agent's view of the cluster.", nil, nil),
		leaderless: prometheus.NewDesc("streamhouse_cluster_partitions_without_leader",
			"Partitions no agent leads, in this agent's view of the cluster: neither produce nor group coordination works for them.", nil, nil),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.agents
	ch <- c.parts
	ch <- c.leaderless
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.view.Status()
	leaderless := 0
	for _, p := range st.Partitions {
		if p.Leader == nil {
			leaderless++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.agents, prometheus.GaugeValue, float64(len(st.Agents)))
	ch <- prometheus.MustNewConstMetric(c.parts, prometheus.GaugeValue, float64(len(st.Partitions)))
	ch <- prometheus.MustNewConstMetric(c.leaderless, prometheus.GaugeValue, float64(leaderless))
}
