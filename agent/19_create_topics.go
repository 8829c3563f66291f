package agent

import (
	"context"
	"errors"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/coord"
)

// CreateTopics: v0-7
//
// Any agent creates topics (each is one etcd Txn); the response waits, up to TimeoutMillis capped at
// maxAdminWait, until this agent's watched view has the new topics and a live leader for each of their
// partitions, so that a client can write to a topic as soon as it is answered: a partition listed
// without a leader fails the writes of clients that do not retry that (segmentio/kafka-go). A topic still
// unseen or unled then answers REQUEST_TIMED_OUT, as Kafka does when leaders are not elected within the
// timeout (the topic was created). A TimeoutMillis of 0 answers at once, as in Kafka.
//
// Replication: any ReplicationFactor ≥ 1 (or -1) is accepted and the topic reports 1. Durability is
// S3's, not followers': every partition has one leader and no followers, whatever a client asks, and
// clients routinely ask 3. A factor of 0 or below -1 is INVALID_REPLICATION_FACTOR. Manual replica
// assignments are INVALID_REQUEST: placement decides leaders. Partitions: 1 to maxPartitionsPerTopic, or
// -1 for the agent's default; anything else is INVALID_PARTITIONS. A request creating more than
// --max-partitions-per-request partitions in all, or a topic taking the cluster past --max-partitions,
// is POLICY_VIOLATION (partition_limits.go). Kafka's check that names differing
// only in '.' and '_' collide guards its metric names; StreamHouse's metrics do not need it.
//
// Version notes:
// * v1: ValidateOnly; ErrorMessage in response
// * v2: ThrottleMillis in response
// * v3: no change (throttling applied after the response)
// * v4: -1 NumPartitions / ReplicationFactor mean the broker defaults (KIP-464; accepted at every version)
// * v5: flexible; NumPartitions, ReplicationFactor and Configs in response (KIP-525)
// * v6: no change (KIP-599 quota errors, never sent)
// * v7: TopicID in response (KIP-516)

func (a *Agent) handleCreateTopics(ctx context.Context, c client, req *kmsg.CreateTopicsRequest) kmsg.Response {
	return a.topicAdmin().createTopics(ctx, req)
}

func (ta *topicAdmin) createTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	dups := duplicated(len(req.Topics), func(i int) string { return req.Topics[i].Topic })
	answered := make(map[string]bool, len(req.Topics))
	made := map[int]coord.Topic{} // response index → created topic
	reqErr := ta.checkRequestPartitions(createTopicsPartitions(req, ta.cfg.DefaultPartitions))
	have := ta.clusterPartitions() // and what this request created
	for i := range req.Topics {
		rt := &req.Topics[i]
		if answered[rt.Topic] {
			continue // one answer per name, as Kafka
		}
		answered[rt.Topic] = true
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		var t coord.Topic
		var err error
		switch {
		case dups[rt.Topic]:
			err = adminErrorf(kerr.InvalidRequest, "topic %s appears more than once in the request", quoteShort(rt.Topic))
		case reqErr != nil:
			err = reqErr
		default:
			t, err = ta.createTopic(ctx, rt, req.ValidateOnly, have)
			if err == nil && !req.ValidateOnly {
				have += int64(t.Partitions)
			}
		}
		if err != nil {
			st.ErrorCode, st.ErrorMessage = ta.answer(err)
		} else {
			fillCreatedTopic(&st, t, clusterTopicDefaults(ta.cfg))
			if !req.ValidateOnly {
				made[len(resp.Topics)] = t
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	ta.awaitCreated(ctx, ta.waitFor(req.TimeoutMillis), resp, made)
	return resp
}

// awaitCreated waits for the view to show the created topics, each partition with a live leader, and
// answers REQUEST_TIMED_OUT for those it does not show so in time. A zero wait answers at once, as Kafka
// does for a zero timeout.
func (ta *topicAdmin) awaitCreated(ctx context.Context, d time.Duration, resp *kmsg.CreateTopicsResponse, made map[int]coord.Topic) {
	visible := func(t coord.Topic) bool { _, ok := ta.sameTopic(t); return ok }
	for _, i := range ta.awaitEach(ctx, d, made, func(t coord.Topic) bool { return visible(t) && ta.allLed(t) }) {
		t := made[i]
		err := errNotVisible("topic " + quoteShort(t.Name) + " was created")
		if visible(t) {
			err = adminErrorf(kerr.RequestTimedOut, "topic %s was created, but not every partition had a leader within the timeout", quoteShort(t.Name))
		}
		st := &resp.Topics[i]
		st.ErrorCode, st.ErrorMessage = ta.answer(err)
	}
}

// createTopic validates one topic of the request and, unless validateOnly, creates it in a cluster of
// have partitions.
func (ta *topicAdmin) createTopic(ctx context.Context, rt *kmsg.CreateTopicsRequestTopic, validateOnly bool, have int64) (coord.Topic, error) {
	t, err := planTopic(rt, ta.cfg.DefaultPartitions)
	if err != nil {
		return coord.Topic{}, err
	}
	if _, ok := ta.view.Topic(t.Name); !ok {
		if err := ta.checkClusterPartitions(have, int64(t.Partitions)); err != nil {
			return coord.Topic{}, err
		}
	}
	if validateOnly {
		if _, ok := ta.view.Topic(t.Name); ok {
			return coord.Topic{}, errTopicExists(t.Name)
		}
		return t, nil
	}
	t.ID = coord.NewTopicID()
	t, err = ta.store.CreateTopic(ctx, t)
	if errors.Is(err, coord.ErrTopicExists) {
		return coord.Topic{}, errTopicExists(rt.Topic)
	}
	return t, err
}

func errTopicExists(name string) error {
	return adminErrorf(kerr.TopicAlreadyExists, "topic %s already exists", quoteShort(name))
}

// planTopic checks a requested topic and returns it as it would be stored (without an id).
func planTopic(rt *kmsg.CreateTopicsRequestTopic, defaultPartitions int32) (coord.Topic, error) {
	if err := validateTopicName(rt.Topic); err != nil {
		return coord.Topic{}, err
	}
	if len(rt.ReplicaAssignment) > 0 {
		return coord.Topic{}, adminErrorf(kerr.InvalidRequest,
			"manual replica assignment is not supported: StreamHouse places partition leaders itself")
	}
	n := rt.NumPartitions
	if n == -1 {
		n = defaultPartitions
	}
	if n <= 0 || n > maxPartitionsPerTopic {
		return coord.Topic{}, adminErrorf(kerr.InvalidPartitions,
			"number of partitions must be between 1 and %d (or -1 for the default), got %d", maxPartitionsPerTopic, n)
	}
	if rf := rt.ReplicationFactor; rf != -1 && rf < 1 {
		return coord.Topic{}, adminErrorf(kerr.InvalidReplicationFactor,
			"replication factor must be at least 1 (or -1 for the default), got %d", rf)
	}
	configs, err := createConfigs(rt.Configs)
	if err != nil {
		return coord.Topic{}, err
	}
	return coord.Topic{Name: rt.Topic, Partitions: n, Configs: configs}, nil
}

// fillCreatedTopic sets the v5+ (and v7) fields of a created topic's answer.
func fillCreatedTopic(st *kmsg.CreateTopicsResponseTopic, t coord.Topic, defaults map[string]string) {
	st.TopicID = t.ID // zero for ValidateOnly: no id exists yet
	st.NumPartitions = t.Partitions
	st.ReplicationFactor = 1
	for _, e := range topicConfigEntries(t, defaults) {
		st.Configs = append(st.Configs, e.created())
	}
}
