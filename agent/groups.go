package agent

import (
	"strings"

	"github.com/streamhouse/streamhouse/agent/internal/group"
	"github.com/streamhouse/streamhouse/coord"
)

// Group coordination rides on partition leadership (agent/internal/group has the why). Each agent group
// has an internal topic, __consumer_offsets (__consumer_offsets.<agent group> for groups other than the
// default one), bound to that agent group, whose partitions are the coordinator shards; this file wires
// the coordinator to the agent's leadership, view and etcd client.

const offsetsTopicName = "__consumer_offsets"

// offsetsTopic is the offsets topic of an agent group.
func offsetsTopic(agentGroup string) string {
	if agentGroup == DefaultGroup {
		return offsetsTopicName
	}
	return offsetsTopicName + "." + agentGroup
}

// isInternalTopic reports whether a topic is an offsets topic, reported as internal in Metadata.
func isInternalTopic(name string) bool {
	return name == offsetsTopicName || strings.HasPrefix(name, offsetsTopicName+".")
}

// newGroupCoordinator is the coordinator of the consumer groups of a's agent group.
func newGroupCoordinator(a *Agent) *group.Coordinator {
	cfg := group.DefaultConfig()
	cfg.Retention, cfg.RetentionCheck = a.cfg.OffsetsRetention, a.cfg.OffsetsRetentionCheckInterval
	cfg.MaxSize, cfg.MaxSizeHit = a.cfg.GroupMaxSize, func() { a.limitHit(limitGroupMaxSize) }
	return group.New(cfg, group.Deps{
		Log:          a.log.Named("groups"),
		NS:           a.cfg.Group,
		Topic:        offsetsTopic(a.cfg.Group),
		TopicConfigs: map[string]string{configAgentGroup: a.cfg.Group},
		Store:        a.etcd,
		View:         a.cache,
		Leader:       a.shardLeadership, // nothing once the session is lost, even before the leadership loop notices
		Lost:         a.dropShardLeadership,
		Serves:       a.servesTopic,
		Registerer:   a.cfg.Registerer,
	})
}

// shardLeadership is a's leadership of a coordinator shard, if it leads it.
func (a *Agent) shardLeadership(tp coord.TP) (group.Leadership, bool) {
	pl := a.lead.leading(tp)
	if pl == nil {
		return group.Leadership{}, false
	}
	return group.Leadership{TP: pl.tp, Topic: pl.topic, Epoch: pl.epoch}, true
}

// dropShardLeadership gives up a coordinator shard whose group write was fenced, as a partition
// whose commit was fenced: leadership is re-established (or not) by the leadership loop.
func (a *Agent) dropShardLeadership(l group.Leadership) {
	a.lead.dropUntilReestablished(l.TP, l.Epoch, "group write fenced; coordinator shard dropped until leadership is re-established")
}
