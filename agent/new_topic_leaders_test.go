package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// newTopicRounds is how many topics each test creates: before CreateTopics and auto-creation waited
// for leaders, one round in two to five failed.
const newTopicRounds = 20

// newTopicPartitions: several partitions, acquired concurrently, widen the window a topic spends
// partly led.
const newTopicPartitions = 8

// kafkaGoWriter is a segmentio/kafka-go Writer of a, as a new user writes one: it fails a write to a
// partition that metadata lists without a leader ("topic partition has no leader") without retrying.
func kafkaGoWriter(t *testing.T, a *Agent, transport *kafkago.Transport, autoCreate bool) *kafkago.Writer {
	t.Helper()
	w := &kafkago.Writer{
		Addr:                   kafkago.TCP(a.KafkaAddr()),
		Transport:              transport,
		Balancer:               &kafkago.RoundRobin{},
		BatchTimeout:           time.Millisecond,
		RequiredAcks:           kafkago.RequireAll,
		AllowAutoTopicCreation: autoCreate,
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func kafkaGoTransport(t *testing.T) *kafkago.Transport {
	tr := &kafkago.Transport{ClientID: "kafka-go-test"}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// writeEach writes one message to each partition of topic (the round-robin balancer goes around them).
func writeEach(ctx context.Context, w *kafkago.Writer, topic string) error {
	msgs := make([]kafkago.Message, newTopicPartitions)
	for i := range msgs {
		msgs[i] = kafkago.Message{Topic: topic, Value: fmt.Appendf(nil, "m%d", i)}
	}
	return w.WriteMessages(ctx, msgs...)
}

// CreateTopics answers once every partition has a leader: kafka-go, which writes at once after it and
// does not retry a partition listed without a leader, writes every time.
func TestKafkaGoWritesRightAfterCreateTopics(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	tr := kafkaGoTransport(t)
	admin := &kafkago.Client{Addr: kafkago.TCP(a.KafkaAddr()), Transport: tr, Timeout: 10 * time.Second}
	w := kafkaGoWriter(t, a, tr, false)
	for i := range newTopicRounds {
		topic := fmt.Sprintf("created-%d", i)
		resp, err := admin.CreateTopics(testCtx(t), &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{
			{Topic: topic, NumPartitions: newTopicPartitions, ReplicationFactor: 1}}})
		if err == nil {
			err = errors.Join(resp.Errors[topic])
		}
		if err != nil {
			t.Fatalf("round %d: create topic: %v", i, err)
		}
		if err := writeEach(testCtx(t), w, topic); err != nil {
			t.Fatalf("round %d: write right after CreateTopics: %v", i, err)
		}
	}
}

// An auto-created topic is answered once every partition has a leader: kafka-go's first write to a
// new topic succeeds.
func TestKafkaGoAutoCreateWrite(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.AutoCreateTopics = true; c.DefaultPartitions = newTopicPartitions })
	w := kafkaGoWriter(t, a, kafkaGoTransport(t), true)
	for i := range newTopicRounds {
		if err := writeEach(testCtx(t), w, fmt.Sprintf("auto-%d", i)); err != nil {
			t.Fatalf("round %d: first write to an auto-created topic: %v", i, err)
		}
	}
}

// franz-go: right after CreateTopics, and in the Metadata answer that auto-creates a topic, every
// partition has a leader.
func TestNewTopicLedWhenAnswered(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.AutoCreateTopics = true; c.DefaultPartitions = newTopicPartitions })
	adm := kadm.NewClient(kgoClient(t, nil, a))
	c := dialRaw(t, a)
	for i := range newTopicRounds {
		topic := fmt.Sprintf("kadm-%d", i)
		resp, err := adm.CreateTopic(testCtx(t), newTopicPartitions, 1, nil, topic)
		if err == nil {
			err = resp.Err
		}
		if err != nil {
			t.Fatalf("round %d: create topic: %v", i, err)
		}
		checkLed(t, metadataOf(c, topic, false), topic)
		auto := fmt.Sprintf("auto-%d", i)
		checkLed(t, metadataOf(c, auto, true), auto)
	}
}

// metadataOf asks for one topic's metadata, allowing its auto-creation or not.
func metadataOf(c *rawConn, topic string, autoCreate bool) kmsg.MetadataResponseTopic {
	c.t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = &topic
	req.Topics = append(req.Topics, rt)
	req.AllowAutoTopicCreation = autoCreate
	resp := c.roundTrip(req, 12).(*kmsg.MetadataResponse)
	if len(resp.Topics) != 1 {
		c.t.Fatalf("metadata of %s: %d topics", topic, len(resp.Topics))
	}
	return resp.Topics[0]
}

func checkLed(t *testing.T, mt kmsg.MetadataResponseTopic, topic string) {
	t.Helper()
	wantOK(t, "metadata of "+topic, mt.ErrorCode)
	if len(mt.Partitions) != newTopicPartitions {
		t.Fatalf("%s: %d partitions listed, want %d", topic, len(mt.Partitions), newTopicPartitions)
	}
	for _, p := range mt.Partitions {
		if p.ErrorCode != 0 || p.Leader < 0 {
			t.Fatalf("%s/%d listed without a leader (%s)", topic, p.Partition, errName(p.ErrorCode))
		}
	}
}
