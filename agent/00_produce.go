package agent

import (
	"context"
	"errors"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/extcache"
	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/internal/future"
)

// Produce: v0-11
//
// Only record batch v2 (magic 2) is stored, so v0-2 requests, which carry message sets of magic 0 and 1,
// get UNSUPPORTED_FOR_MESSAGE_FORMAT per partition. Each partition must carry exactly one batch, as
// Kafka requires of magic 2. acks=1 and acks=-1 are the same here: an answer always means the batch is
// in S3 and its index entry committed in etcd. acks=0 gets no answer at all.
//
// Version notes:
// * v1: ThrottleMillis
// * v2: LogAppendTime in the response
// * v3: TransactionalID; record batch v2 only
// * v5: LogStartOffset in the response
// * v8: ErrorRecords and ErrorMessage in the response
// * v9: flexible versions
// * v10-11: leader hints on NOT_LEADER (KIP-951): the answer waits, briefly, until the partition's
//   next leader is known and names it (see awaitSuccessors)

// handleProduce validates each partition's batch and buffers it for the next flush before it returns,
// so that the produce requests of one connection are sequenced in the order they were sent. The
// returned function waits for the acknowledgements and builds the response.
func (a *Agent) handleProduce(ctx context.Context, c client, req *kmsg.ProduceRequest) func() kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	type slot struct {
		p  *kmsg.ProduceResponseTopicPartition
		pa *pendingAppend
	}
	var slots []slot
	start := time.Now()
	for i := range req.Topics {
		rt := &req.Topics[i]
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	received := 0
	for i := range req.Topics {
		for j := range req.Topics[i].Partitions {
			received += len(req.Topics[i].Partitions[j].Records)
		}
	}
	a.countClientRecords("in", clientZone(c.id, ""), received)
	// Every partition's batch is a slice of the request's one frame: the cache keeps them without a
	// copy, charged for the frame they hold on to (its batches are nearly all of it).
	frame := extcache.NewBacking(int64(received))
	for i := range req.Topics {
		rt := &req.Topics[i]
		t, known := a.cache.Topic(rt.Topic)
		for j := range rt.Partitions {
			rp := &rt.Partitions[j]
			sp := &resp.Topics[i].Partitions[j]
			pa, err := a.admitProduce(ctx, req, t, known, rp, frame)
			if err != nil {
				sp.ErrorCode = kafkaCode(err)
				answerRecordErrors(sp, err)
				a.metrics.produceErrors.WithLabelValues(errName(sp.ErrorCode)).Inc()
				continue
			}
			pa.start = start
			slots = append(slots, slot{sp, pa})
		}
	}
	return func() kmsg.Response {
		timeout := time.NewTimer(timeoutOf(req))
		defer timeout.Stop()
		timedOut := false
		for _, s := range slots {
			if !timedOut {
				select {
				case <-s.pa.res.Done():
				case <-timeout.C:
					timedOut = true
				case <-ctx.Done():
					return nil // the connection is gone
				}
			}
			a.answerProduce(s.p, s.pa, timedOut)
		}
		if req.Version >= 10 {
			if !a.awaitSuccessors(ctx, notLeader(resp, a.cache), start.Add(timeoutOf(req))) {
				return nil // the connection is gone
			}
			a.leaderHints(resp, clientZone(c.id, ""))
			a.listenerHints(resp, c)
		}
		return resp
	}
}

// handoverWait bounds how long a NOT_LEADER_OR_FOLLOWER answer waits for the partition's next leader.
// A handover (a graceful shutdown, a placement move) names the successor within milliseconds; an answer
// without one sends the client to its metadata refresh, which clients space out by seconds (franz-go:
// 5 s), so a short wait here is what lets a producer move on at once.
const handoverWait = 2 * time.Second

func timeoutOf(req *kmsg.ProduceRequest) time.Duration {
	return time.Duration(max(req.TimeoutMillis, 0)) * time.Millisecond
}

// notLeader is the partitions a produce response refuses with NOT_LEADER_OR_FOLLOWER.
func notLeader(resp *kmsg.ProduceResponse, cache *coord.Cache) []coord.TP {
	var out []coord.TP
	for i := range resp.Topics {
		rt := &resp.Topics[i]
		t, ok := cache.Topic(rt.Topic)
		for j := range rt.Partitions {
			if ok && rt.Partitions[j].ErrorCode == kerr.NotLeaderForPartition.Code {
				out = append(out, t.TP(rt.Partitions[j].Partition))
			}
		}
	}
	return out
}

// produceBroker is agent id as a produce response's broker entry.
func (a *Agent) produceBroker(id string) (kmsg.ProduceResponseBroker, bool) {
	for _, ag := range a.brokers() {
		if ag.ID != id {
			continue
		}
		host, port, err := net.SplitHostPort(ag.Addr)
		if err != nil {
			return kmsg.ProduceResponseBroker{}, false
		}
		p, _ := strconv.Atoi(port)
		b := kmsg.NewProduceResponseBroker()
		b.NodeID, b.Host, b.Port = a.nodeID(ag.ID), host, int32(p)
		if ag.AZ != "" {
			az := ag.AZ
			b.Rack = &az
		}
		return b, true
	}
	return kmsg.ProduceResponseBroker{}, false
}

// admitProduce checks one partition of a produce request and, when it may be written, buffers it.
func (a *Agent) admitProduce(ctx context.Context, req *kmsg.ProduceRequest, t coord.Topic, known bool, rp *kmsg.ProduceRequestTopicPartition, frame *extcache.Backing) (*pendingAppend, error) {
	switch {
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		return nil, kerr.InvalidRequiredAcks
	case req.TransactionID != nil && a.txns == nil:
		return nil, kerr.TransactionalIDAuthorizationFailed
	case !known || rp.Partition < 0 || rp.Partition >= t.Partitions:
		return nil, kerr.UnknownTopicOrPartition
	case !a.servesTopic(t):
		return nil, kerr.UnknownTopicOrPartition
	case isInternalTopic(t.Name):
		return nil, kerr.InvalidTopicException // as Kafka: clients cannot append to internal topics
	case a.stopping.Load():
		return nil, errShuttingDown
	}
	tp := coord.TP{Topic: t.ID, Partition: rp.Partition}
	if _, forward := a.forwardTo(tp); !forward && a.lead.leading(tp) == nil {
		return nil, errNotLeader
	}
	if len(rp.Records) > int(topicMaxMessageBytes(t)) {
		return nil, kerr.MessageTooLarge
	}
	if req.Version < 7 && kwire.Codec(rp.Records) == kwire.CodecZstd {
		return nil, kerr.UnsupportedCompressionType // as Kafka: zstd needs Produce v7 (KIP-110)
	}
	meta, err := a.parseBatch(rp.Records)
	if err != nil {
		return nil, err
	}
	if err := a.checkKeys(t, rp.Partition, rp.Records); err != nil {
		return nil, err
	}
	if err := a.checkTimestamps(t, rp.Records, time.Now()); err != nil {
		return nil, err
	}
	batch, recompressed, err := a.applyCompressionType(t, rp.Records)
	if err != nil {
		return nil, err
	}
	if recompressed {
		frame = nil // the batch is its own bytes now, no longer a slice of the request's frame
	}
	appendTime := applyLogAppendTime(t, batch, &meta, time.Now())
	if err := a.checkProducerID(ctx, meta.ProducerID); err != nil {
		return nil, err
	}
	var txnRev int64
	if meta.Transactional {
		if txnRev, err = a.verifyTxnBatch(ctx, req.TransactionID, tp, meta); err != nil {
			return nil, err
		}
	}
	pa := &pendingAppend{tp: tp, topic: t.Name, batch: batch, crc: kwire.StoredCRC(batch), frame: frame, meta: meta,
		logAppendTime: appendTime, txnRev: txnRev, res: future.Make[int64]()}
	if err := a.flusher.submit(ctx, pa); err != nil {
		return nil, err
	}
	return pa, nil
}

// answerProduce fills one partition's response from its append's outcome.
func (a *Agent) answerProduce(sp *kmsg.ProduceResponseTopicPartition, pa *pendingAppend, timedOut bool) {
	if timedOut && !pa.res.IsDone() {
		// Still in flight: it may yet be committed, as in Kafka; an idempotent retry is deduplicated.
		sp.ErrorCode = kerr.RequestTimedOut.Code
		a.metrics.produceErrors.WithLabelValues(errName(kerr.RequestTimedOut.Code)).Inc()
		return
	}
	base, err := pa.res.Result()
	if err != nil {
		sp.ErrorCode = kafkaCode(err)
		a.metrics.produceErrors.WithLabelValues(errName(sp.ErrorCode)).Inc()
		return
	}
	sp.BaseOffset = base
	sp.LogAppendTime = -1
	if pa.logAppendTime > 0 {
		sp.LogAppendTime = pa.logAppendTime
	}
	sp.LogStartOffset = a.cache.LogStart(pa.tp)
	a.metrics.produceBytes.Add(float64(len(pa.batch)))
	a.metrics.produceRecords.Add(float64(pa.meta.Records))
	a.metrics.produceLatency.Observe(time.Since(pa.start).Seconds())
}

// parseBatch is kwire.ParseProduceBatch with this agent's decompression limit; it counts the batches
// refused at the limit, and refuses transactional batches unless transactions are served.
func (a *Agent) parseBatch(b []byte) (kwire.BatchMeta, error) {
	m, err := kwire.ParseProduceBatch(b, a.cfg.MaxDecompressedBatchBytes)
	if errors.Is(err, kwire.ErrBatchTooLarge) {
		a.metrics.trust.decompressLimit.Inc()
	}
	if err == nil && m.Transactional && a.txns == nil {
		return kwire.BatchMeta{}, kwire.ErrBatchTransactional // transactions are not served
	}
	return m, err
}
