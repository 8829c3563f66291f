package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// saramaCodecs pairs each of codecs with sarama's constant for it.
var saramaCodecs = map[string]sarama.CompressionCodec{
	"none": sarama.CompressionNone, "gzip": sarama.CompressionGZIP, "snappy": sarama.CompressionSnappy,
	"lz4": sarama.CompressionLZ4, "zstd": sarama.CompressionZSTD,
}

// saramaRecords is how many records each sarama producer writes; the sync producer sends
// saramaSingles of them one at a time.
const saramaRecords, saramaSingles = 500, 20

// saramaConfig is a client configuration for a Kafka 2.8 cluster (zstd needs 2.1).
func saramaConfig(codec string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = "streamhouse-e2e"
	cfg.Version = sarama.V2_8_0_0
	cfg.Producer.Compression = saramaCodecs[codec]
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewRoundRobinPartitioner
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

// sarama (IBM/sarama) with every codec: an idempotent SyncProducer and a pipelining AsyncProducer
// write a 3-partition topic each; sarama's partition consumer reads every record back once, at the
// partition and offset its producer was told, with dense offsets; the batches keep sarama's codec.
func TestSarama(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	brokers := d.brokers(t)
	for _, codec := range codecs {
		t.Run(codec, func(t *testing.T) {
			t.Parallel()
			t.Run("sync-idempotent", func(t *testing.T) {
				topic := "sarama-sync-" + codec
				createTopic(t, brokers, topic, 3)
				want := values(topic, saramaRecords)
				acked := saramaSyncProduce(t, brokers, codec, topic, want)
				checkSarama(t, brokers, codec, topic, want, acked)
			})
			t.Run("async", func(t *testing.T) {
				topic := "sarama-async-" + codec
				createTopic(t, brokers, topic, 3)
				want := values(topic, saramaRecords)
				acked := saramaAsyncProduce(t, brokers, codec, topic, want)
				checkSarama(t, brokers, codec, topic, want, acked)
			})
		})
	}
}

// saramaSyncProduce writes values with an idempotent SyncProducer: the first saramaSingles one at a
// time (each waits for its flush), the rest as one SendMessages call. It returns where each value was acknowledged.
func saramaSyncProduce(t *testing.T, brokers, codec, topic string, vs []string) map[string]record {
	t.Helper()
	cfg := saramaConfig(codec)
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Net.MaxOpenRequests = 1
	p, err := sarama.NewSyncProducer([]string{brokers}, cfg)
	if err != nil {
		t.Fatalf("sarama sync producer: %v", err)
	}
	defer closeOrFail(t, "sarama sync producer", p.Close)
	acked := map[string]record{}
	for _, v := range vs[:saramaSingles] {
		part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)})
		if err != nil {
			t.Fatalf("SendMessage %s: %v", v, err)
		}
		acked[v] = record{partition: part, offset: off, value: v}
	}
	var msgs []*sarama.ProducerMessage
	for _, v := range vs[saramaSingles:] {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("SendMessages: %v", err)
	}
	for i, m := range msgs {
		acked[vs[saramaSingles+i]] = record{partition: m.Partition, offset: m.Offset, value: vs[saramaSingles+i]}
	}
	return acked
}

// saramaAsyncProduce writes values with an AsyncProducer in sarama's default, pipelined setting (five
// requests in flight, leader acks) and returns where each value was acknowledged.
func saramaAsyncProduce(t *testing.T, brokers, codec, topic string, vs []string) map[string]record {
	t.Helper()
	p, err := sarama.NewAsyncProducer([]string{brokers}, saramaConfig(codec))
	if err != nil {
		t.Fatalf("sarama async producer: %v", err)
	}
	defer closeOrFail(t, "sarama async producer", p.Close)
	go func() {
		for _, v := range vs {
			p.Input() <- &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v), Metadata: v}
		}
	}()
	acked := map[string]record{}
	deadline := time.After(readTimeout)
	for len(acked) < len(vs) {
		select {
		case m := <-p.Successes():
			v := m.Metadata.(string)
			acked[v] = record{partition: m.Partition, offset: m.Offset, value: v}
		case perr := <-p.Errors():
			t.Fatalf("async produce %v: %v", perr.Msg.Metadata, perr.Err)
		case <-deadline:
			t.Fatalf("async produce: %d of %d acknowledged within %v", len(acked), len(vs), readTimeout)
		}
	}
	return acked
}

// checkSarama reads topic back with sarama's partition consumer and checks it against want and
// against where each value was acknowledged; franz-go then checks the batches' codec (sarama
// compresses every batch, however small).
func checkSarama(t *testing.T, brokers, codec, topic string, want []string, acked map[string]record) {
	t.Helper()
	counts := map[int32]int64{}
	for _, r := range acked {
		counts[r.partition]++
	}
	recs := saramaConsume(t, brokers, topic, counts)
	checkLog(t, recs, want)
	checkAcked(t, recs, acked)
	checkCodec(t, readAll(t, brokers, topic), codec, false)
}

// saramaConsume reads counts[p] records from each partition p, from the oldest offset, with sarama's
// partition consumers (no consumer group), all at once, and checks that each partition's high
// watermark is where reading ended.
func saramaConsume(t *testing.T, brokers, topic string, counts map[int32]int64) []record {
	t.Helper()
	cfg := saramaConfig("none")
	cfg.Consumer.MaxWaitTime = 50 * time.Millisecond // closing a partition consumer waits for its long poll
	c, err := sarama.NewConsumer([]string{brokers}, cfg)
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer closeOrFail(t, "sarama consumer", c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	type result struct {
		rec record
		err error
	}
	results := make(chan result)
	pcs := map[int32]sarama.PartitionConsumer{}
	var total int64
	for p, n := range counts {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("consume %s[%d]: %v", topic, p, err)
		}
		defer closeOrFail(t, fmt.Sprintf("partition consumer %d", p), pc.Close)
		pcs[p], total = pc, total+n
		go func() {
			for range n {
				var r result
				select {
				case m := <-pc.Messages():
					r.rec = record{partition: m.Partition, offset: m.Offset, key: string(m.Key), value: string(m.Value)}
				case cerr := <-pc.Errors():
					r.err = fmt.Errorf("consume %s[%d]: %w", topic, p, cerr.Err)
				case <-ctx.Done():
					return
				}
				select {
				case results <- r:
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	var recs []record
	for int64(len(recs)) < total {
		select {
		case r := <-results:
			if r.err != nil {
				t.Fatal(r.err)
			}
			recs = append(recs, r.rec)
		case <-ctx.Done():
			t.Fatalf("consume %s: %d of %d records within %v", topic, len(recs), total, readTimeout)
		}
	}
	for p, pc := range pcs {
		if hwm := pc.HighWaterMarkOffset(); hwm != counts[p] {
			t.Errorf("%s[%d]: high watermark %d after reading %d records", topic, p, hwm, counts[p])
		}
	}
	return recs
}

func closeOrFail(t *testing.T, what string, closeFn func() error) {
	t.Helper()
	if err := closeFn(); err != nil {
		t.Errorf("close %s: %v", what, err)
	}
}
