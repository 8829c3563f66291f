package agent

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Every partition is etcd keys, a leader and leadership work on some agent: what CreateTopics and
// CreatePartitions may add is bounded per request (--max-partitions-per-request, as Kafka's
// controller bounds it) and for the cluster (--max-partitions). Both refusals are POLICY_VIOLATION,
// Kafka's answer to a request its limits or policies do not allow. The cluster's total is read from
// the watched view: agents creating topics at the same moment can pass it by what they create at once.

// hit counts one hit of the named limit (nothing in tests without metrics).
func (ta *topicAdmin) hit(limit string) {
	if ta.limitHit != nil {
		ta.limitHit(limit)
	}
}

// checkRequestPartitions refuses a request that would create more than --max-partitions-per-request.
func (ta *topicAdmin) checkRequestPartitions(n int64) error {
	if limit := ta.cfg.MaxPartitionsPerRequest; n > int64(limit) {
		ta.hit(limitPartitionsPerRequest)
		return adminErrorf(kerr.PolicyViolation,
			"the request would create %d partitions, more than the %d one request may (--max-partitions-per-request)", n, limit)
	}
	return nil
}

// clusterPartitions is the partitions of every topic in the view, internal ones included.
func (ta *topicAdmin) clusterPartitions() int64 {
	var n int64
	for _, t := range ta.view.Topics() {
		n += int64(t.Partitions)
	}
	return n
}

// checkClusterPartitions refuses adding add partitions to a cluster of have.
func (ta *topicAdmin) checkClusterPartitions(have, add int64) error {
	if limit := ta.cfg.MaxPartitions; have+add > int64(limit) {
		ta.hit(limitPartitions)
		return adminErrorf(kerr.PolicyViolation,
			"the cluster has %d partitions; %d more would pass its limit of %d (--max-partitions)", have, add, limit)
	}
	return nil
}

// createTopicsPartitions is what a CreateTopics asks to create in all, a count of -1 being the default;
// counts no topic may have are refused topic by topic, and not counted.
func createTopicsPartitions(req *kmsg.CreateTopicsRequest, defaultPartitions int32) int64 {
	var n int64
	for _, rt := range req.Topics {
		switch {
		case rt.NumPartitions == -1:
			n += int64(defaultPartitions)
		case rt.NumPartitions > 0 && rt.NumPartitions <= maxPartitionsPerTopic:
			n += int64(rt.NumPartitions)
		}
	}
	return n
}

// createPartitionsGrowth is what a CreatePartitions asks to add, as far as the view knows the topics.
func (ta *topicAdmin) createPartitionsGrowth(req *kmsg.CreatePartitionsRequest) int64 {
	var n int64
	for _, rt := range req.Topics {
		if t, ok := ta.view.Topic(rt.Topic); ok && rt.Count > t.Partitions {
			n += int64(rt.Count - t.Partitions)
		}
	}
	return n
}
