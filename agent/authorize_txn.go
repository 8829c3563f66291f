package agent

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/auth"
)

// authorizeDescribeProducers needs Read on each topic, as Kafka's KafkaApis asks; a refused topic's
// partitions answer TOPIC_AUTHORIZATION_FAILED.
func (a *Agent) authorizeDescribeProducers(c client, r *kmsg.DescribeProducersRequest) func(kmsg.Response) {
	return refuseDenied(&r.Topics, func(t kmsg.DescribeProducersRequestTopic) bool { return a.allowedTopic(c, auth.OpRead, t.Topic) },
		func(resp kmsg.Response, t kmsg.DescribeProducersRequestTopic) {
			dr := resp.(*kmsg.DescribeProducersResponse)
			rt := kmsg.NewDescribeProducersResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				sp := kmsg.NewDescribeProducersResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p, topicDenied
				rt.Partitions = append(rt.Partitions, sp)
			}
			dr.Topics = append(dr.Topics, rt)
		})
}
