package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The hostile-client suite: bad clients, as a raw socket makes them, against real processes, with the
// agent's limits lowered so that each is reached with a handful of connections and a few MiB. Each case
// checks that the agent stays up, that a well-behaved franz-go client is served alongside (while the
// bad clients hold what they hold), and that the agent's RSS stays within hostileRSSSlack of what it
// was before the case.

// hostileLimits are the flags every case runs the agent with.
var hostileLimits = []string{
	"--max-connections-per-ip", "32", "--connections-max-idle", "2s", "--frame-timeout", "2s",
	"--max-request-bytes", "8MiB", "--queued-max-request-bytes", "32MiB", "--fetch-max-wait", "1s",
	"--max-partitions-per-request", "100", "--max-partitions", "300",
	"--max-producer-ids-per-partition", "3", "--group-max-size", "2",
}

// hostileRSSSlack bounds how much a case may grow the agent's RSS: the request budget (32 MiB), what the
// GC lets pile up before it runs, and the rest of the process's churn (measured: at most 21 MiB). Without
// the budget, the partial frames alone hold 30 × 7 MiB.
const hostileRSSSlack = 96 << 20

// closeWait bounds how long a bad client may wait for the agent to close its connection: the limits
// above close everything within a few seconds; reaching it is a failure.
const closeWait = 30 * time.Second

// hostile is the agent under attack and the well-behaved client served alongside.
type hostile struct {
	d      *dev
	pid    int
	kafka  string
	http   string
	good   *kgo.Client // produces to "good" and reads it back
	reader *kgo.Client
	sent   int
	rssMax int64 // the largest RSS sampled during the current case
}

func TestHostileClients(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), hostileLimits...)
	createTopic(t, d.brokers(t), "good", 1)
	h := &hostile{d: d, pid: d.cmd.Process.Pid, kafka: d.brokers(t), http: d.http[0]}
	h.good = newKgo(t, h.kafka, kgo.DefaultProduceTopic("good"), kgo.MetadataMinAge(100*time.Millisecond))
	h.reader = newKgo(t, h.kafka, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"good": {0: kgo.NewOffset().AtStart()}}),
		kgo.FetchMaxWait(200*time.Millisecond))
	h.served(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T, *hostile)
	}{
		{"idle connection flood", idleFlood},
		{"partial frames", partialFrames},
		{"long polls with padded tagged fields", longPolls},
		{"inflated arrays", inflatedArrays},
		{"partitions", partitionFlood},
		{"made-up producer ids", madeUpProducerIDs},
		{"producer ids per partition", producerIDFlood},
		{"zone labels", rackFlood},
		{"group size", groupFlood},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := rssBytes(t, h.pid)
			h.rssMax = before
			tc.run(t, h)
			h.served(t)
			if h.d.exited() {
				t.Fatalf("streamhouse dev exited: %v", h.d.cmd.ProcessState)
			}
			t.Logf("RSS %d MiB before, at most %d MiB during", before>>20, h.rssMax>>20)
			if h.rssMax > before+hostileRSSSlack {
				t.Errorf("RSS grew from %d MiB to %d MiB, more than %d MiB", before>>20, h.rssMax>>20, hostileRSSSlack>>20)
			}
		})
	}
}

// served checks that the well-behaved client is served: a record it produces is acknowledged and read
// back. It samples the agent's RSS too.
func (h *hostile) served(t *testing.T) {
	t.Helper()
	h.sampleRSS(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), readTimeout)
	defer cancel()
	h.sent++
	value := fmt.Sprintf("good-%d", h.sent)
	if err := h.good.ProduceSync(ctx, kgo.StringRecord(value)).FirstErr(); err != nil {
		t.Fatalf("the well-behaved producer: %v", err)
	}
	for {
		fetches := h.reader.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("the well-behaved consumer did not read %s", value)
		}
		found := false
		fetches.EachRecord(func(r *kgo.Record) { found = found || string(r.Value) == value })
		if found {
			break
		}
	}
	t.Logf("well-behaved client: produced and read back a record in %v", time.Since(start).Round(time.Millisecond))
	h.sampleRSS(t)
}

func (h *hostile) sampleRSS(t *testing.T) { h.rssMax = max(h.rssMax, rssBytes(t, h.pid)) }

// limitHits reads streamhouse_limit_hits_total{limit} from the agent's /metrics.
func (h *hostile) limitHits(t *testing.T, limit string) float64 {
	t.Helper()
	return metricSum(t, h.http, "streamhouse_limit_hits_total", `limit="`+limit+`"`)
}

// metricSum adds up the samples of metric name on an agent's /metrics whose labels contain match.
func metricSum(t *testing.T, base, name, match string) float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	sum := 0.0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name) || !strings.Contains(line, match) {
			continue
		}
		if rest := line[len(name):]; rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// metricSeries counts the series of metric name on an agent's /metrics.
func metricSeries(t *testing.T, base, name string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return strings.Count(string(body), "\n"+name+"{")
}

// allClosed waits until the agent has closed every one of conns.
func allClosed(t *testing.T, conns []*wireConn) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, c := range conns {
		wg.Go(func() { errs[i] = c.waitClosed(closeWait) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("bad connection %d of %d: %v", i, len(conns), err)
		}
	}
}

// idleFlood: 200 connections from one address that send nothing. Those past max.connections.per.ip
// (32) are closed at once, the rest after connections.max.idle (2 s); the listener goes on.
func idleFlood(t *testing.T, h *hostile) {
	var conns []*wireConn
	for range 200 {
		conns = append(conns, mustDialWire(t, h.kafka, "127.0.0.2"))
	}
	h.served(t)
	allClosed(t, conns)
	if h.limitHits(t, "max_connections_per_ip") < 168 || h.limitHits(t, "connections_max_idle") < 32 {
		t.Errorf("limit hits: per ip %v, idle %v", h.limitHits(t, "max_connections_per_ip"), h.limitHits(t, "connections_max_idle"))
	}
}

// partialFrames: 30 connections each announce an 8 MiB produce and send 7 MiB of it. The request budget
// (32 MiB; a produce frame is charged 2.5 times its size) lets one be read at a time, the others wait
// without allocating, and the frame timeout (2 s) closes each.
func partialFrames(t *testing.T, h *hostile) {
	var conns []*wireConn
	var wg sync.WaitGroup
	for range 30 {
		c := mustDialWire(t, h.kafka, "127.0.0.3")
		conns = append(conns, c)
		head := binary.BigEndian.AppendUint32(nil, 8<<20)
		head = binary.BigEndian.AppendUint16(head, uint16(kmsg.Produce))
		head = binary.BigEndian.AppendUint16(head, 9)
		wg.Go(func() {
			if c.write(head) == nil {
				_ = c.write(make([]byte, 7<<20)) // fails once the agent closes the connection
			}
		})
	}
	h.served(t)
	allClosed(t, conns)
	wg.Wait()
	if h.limitHits(t, "frame_timeout") < 30 {
		t.Errorf("frame_timeout hits %v, want at least 30", h.limitHits(t, "frame_timeout"))
	}
}

// paddedFetch is a fetch of topic from offset 0 that asks to wait forever for a GiB, padded with an
// unknown tagged field of pad bytes.
func paddedFetch(topic string, pad int) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, math.MaxInt32, 1<<30, 1<<20
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	req.UnknownTags.Set(9999, make([]byte, pad))
	return req
}

// longPolls: 16 pipelined fetches on one connection, each asking to wait 2^31-1 ms and padded to 200 KiB
// with a tagged field (non-produce requests may be up to 1/128 of the budget, 256 KiB). Each is
// answered once --fetch-max-wait (1 s) has passed; a padded fetch over 256 KiB is refused unread.
func longPolls(t *testing.T, h *hostile) {
	createTopic(t, h.kafka, "quiet", 1) // nothing is written to it: the fetches wait
	c := mustDialWire(t, h.kafka, "127.0.0.4")
	var corrs []int32
	for range 16 {
		corrs = append(corrs, c.send(paddedFetch("quiet", 200<<10), 12))
	}
	h.served(t)
	for _, want := range corrs {
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(12)
		got, err := c.recv(resp)
		if err != nil || got != want {
			t.Fatalf("long poll %d: answer %d, %v", want, got, err)
		}
	}
	big := mustDialWire(t, h.kafka, "127.0.0.4")
	_ = big.write(frameOf(paddedFetch("quiet", 1<<20), 12, 1)) // cut short when the agent closes the connection
	if err := big.waitClosed(closeWait); err != nil {
		t.Fatalf("a 1 MiB fetch: %v", err)
	}
	if h.limitHits(t, "fetch_max_wait") < 16 || h.limitHits(t, "decode_bound") < 1 {
		t.Errorf("limit hits: fetch_max_wait %v, decode_bound %v", h.limitHits(t, "fetch_max_wait"), h.limitHits(t, "decode_bound"))
	}
}

// inflatedCreateTopics is a CreateTopics of n topics with empty names, each 16 bytes encoded (v4) and
// several times that decoded.
func inflatedCreateTopics(n int) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Topics = make([]kmsg.CreateTopicsRequestTopic, n)
	return req
}

// inflatedArrays: a 7 MiB CreateTopics of 450,000 empty topics (its decoding may take 128 times that)
// and a produce of 400,000 empty partitions are refused before they are decoded; a 200 KiB CreateTopics
// of 12,800 is decoded and answered (INVALID_REQUEST: one name 12,800 times).
func inflatedArrays(t *testing.T, h *hostile) {
	big := mustDialWire(t, h.kafka, "127.0.0.5")
	_ = big.write(frameOf(inflatedCreateTopics(450_000), 4, 1)) // refused unread: the write is cut short
	if err := big.waitClosed(closeWait); err != nil {
		t.Fatalf("a 7 MiB CreateTopics: %v", err)
	}
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks, produce.TimeoutMillis = -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "good"
	rt.Partitions = make([]kmsg.ProduceRequestTopicPartition, 400_000)
	produce.Topics = append(produce.Topics, rt)
	empty := mustDialWire(t, h.kafka, "127.0.0.5")
	_ = empty.write(frameOf(produce, 9, 1))
	if err := empty.waitClosed(closeWait); err != nil {
		t.Fatalf("a produce of 400,000 empty partitions: %v", err)
	}
	h.sampleRSS(t)
	c := mustDialWire(t, h.kafka, "127.0.0.5")
	resp := c.roundTrip(inflatedCreateTopics(12_800), 4).(*kmsg.CreateTopicsResponse)
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("an inflated CreateTopics within the bound: %d answers, first %+v", len(resp.Topics), resp.Topics[:min(1, len(resp.Topics))])
	}
	if h.limitHits(t, "decode_bound") < 3 {
		t.Errorf("decode_bound hits %v, want at least 3", h.limitHits(t, "decode_bound"))
	}
}

func createTopicsOf(partitions int32, names ...string) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 5000
	for _, n := range names {
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = n, partitions, 1
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// partitionFlood: one CreateTopics of 10 topics of 10,000 partitions is refused whole (POLICY_VIOLATION:
// more than 100 in one request); topics of 100 partitions are created until the cluster's 300 would be
// passed.
func partitionFlood(t *testing.T, h *hostile) {
	c := mustDialWire(t, h.kafka, "")
	var names []string
	for i := range 10 {
		names = append(names, fmt.Sprintf("flood-%d", i))
	}
	resp := c.roundTrip(createTopicsOf(10_000, names...), 7).(*kmsg.CreateTopicsResponse)
	for _, st := range resp.Topics {
		if st.ErrorCode != kerr.PolicyViolation.Code {
			t.Fatalf("topic %s of 10,000 partitions: error %d, want POLICY_VIOLATION", st.Topic, st.ErrorCode)
		}
	}
	// The cluster holds 18 partitions (good, quiet and the offsets topic): two topics of 100 fit, a
	// third not.
	var codes []int16
	for i := range 3 {
		resp := c.roundTrip(createTopicsOf(100, fmt.Sprintf("hundred-%d", i)), 7).(*kmsg.CreateTopicsResponse)
		codes = append(codes, resp.Topics[0].ErrorCode)
	}
	if codes[0] != 0 || codes[1] != 0 || codes[2] != kerr.PolicyViolation.Code {
		t.Fatalf("topics of 100 partitions: errors %v, want [0 0 POLICY_VIOLATION]", codes)
	}
}

// producerBatch is a valid v2 record batch of one record from producer pid.
func producerBatch(pid int64, epoch int16, seq int32, value string) []byte {
	b := kmsg.RecordBatch{Magic: 2, ProducerID: pid, ProducerEpoch: epoch, FirstSequence: seq, NumRecords: 1,
		FirstTimestamp: 1000, MaxTimestamp: 1000}
	r := kmsg.Record{Value: []byte(value)}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	b.Records = r.AppendTo(nil)
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// produceWire sends one batch to partition 0 of topic and returns the partition's error code.
func produceWire(t *testing.T, c *wireConn, topic string, batch []byte) int16 {
	t.Helper()
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return c.roundTrip(req, 9).(*kmsg.ProduceResponse).Topics[0].Partitions[0].ErrorCode
}

// initProducerID asks for an idempotent producer id.
func initProducerID(t *testing.T, c *wireConn) int64 {
	t.Helper()
	resp := c.roundTrip(kmsg.NewPtrInitProducerIDRequest(), 4).(*kmsg.InitProducerIDResponse)
	if resp.ErrorCode != 0 {
		t.Fatalf("InitProducerID: error %d", resp.ErrorCode)
	}
	return resp.ProducerID
}

// madeUpProducerIDs: batches from producer ids InitProducerID never handed out are refused with
// UNKNOWN_PRODUCER_ID and write nothing: the log does not grow.
func madeUpProducerIDs(t *testing.T, h *hostile) {
	before := endOffsets(t, h.kafka, "good")[0]
	c := mustDialWire(t, h.kafka, "")
	for _, pid := range []int64{5, 123_456_789, math.MaxInt64} {
		if code := produceWire(t, c, "good", producerBatch(pid, 0, 0, "made up")); code != kerr.UnknownProducerID.Code {
			t.Fatalf("producer id %d: error %d, want UNKNOWN_PRODUCER_ID", pid, code)
		}
	}
	if after := endOffsets(t, h.kafka, "good")[0]; after != before {
		t.Fatalf("high watermark %d -> %d after made-up ids", before, after)
	}
}

// producerIDFlood: five idempotent producers write to one partition that keeps three producers' state
// (--max-producer-ids-per-partition 3): every write succeeds, the two written least recently are
// evicted, and one of those continuing its sequence is refused as Kafka refuses a producer whose state
// expired, while one of the three kept goes on.
func producerIDFlood(t *testing.T, h *hostile) {
	createTopic(t, h.kafka, "pids", 1)
	c := mustDialWire(t, h.kafka, "")
	var pids []int64
	for i := range 5 {
		pid := initProducerID(t, c)
		pids = append(pids, pid)
		if code := produceWire(t, c, "pids", producerBatch(pid, 0, 0, fmt.Sprintf("producer-%d", i))); code != 0 {
			t.Fatalf("producer %d: error %d", i, code)
		}
	}
	if code := produceWire(t, c, "pids", producerBatch(pids[0], 0, 1, "evicted, continuing")); code != kerr.OutOfOrderSequenceNumber.Code {
		t.Errorf("evicted producer continuing its sequence: error %d, want OUT_OF_ORDER_SEQUENCE_NUMBER", code)
	}
	if code := produceWire(t, c, "pids", producerBatch(pids[4], 0, 1, "kept, continuing")); code != 0 {
		t.Errorf("kept producer continuing its sequence: error %d", code)
	}
	if n := h.limitHits(t, "max_producer_ids_per_partition"); n != 2 {
		t.Errorf("max_producer_ids_per_partition hits %v, want 2", n)
	}
}

// rackFlood: 300 fetches, each naming another made-up rack, add one label value (other), not 300.
func rackFlood(t *testing.T, h *hostile) {
	c := mustDialWire(t, h.kafka, "")
	for i := range 300 {
		req := paddedFetch("good", 0)
		req.UnknownTags = kmsg.Tags{}
		req.MaxWaitMillis, req.MinBytes, req.Rack = 0, 1, fmt.Sprintf("rack-%d", i)
		c.roundTrip(req, 12)
	}
	if n := metricSeries(t, h.http, "streamhouse_client_bytes_total"); n > 4 {
		t.Fatalf("%d client_bytes series after 300 made-up racks", n)
	}
	if n := h.limitHits(t, "zone_labels"); n < 300 {
		t.Errorf("zone_labels hits %v, want at least 300", n)
	}
}

// groupFlood: a group of group.max.size (2) members, pending their member ids, refuses a third with
// GROUP_MAX_SIZE_REACHED.
func groupFlood(t *testing.T, h *hostile) {
	c := mustDialWire(t, h.kafka, "")
	var codes []int16
	for range 3 {
		codes = append(codes, joinCode(t, c, "crowd"))
	}
	want := []int16{kerr.MemberIDRequired.Code, kerr.MemberIDRequired.Code, kerr.GroupMaxSizeReached.Code}
	if fmt.Sprint(codes) != fmt.Sprint(want) {
		t.Fatalf("joins: errors %v, want %v", codes, want)
	}
}

// joinCode sends a new member's JoinGroup and returns its error, retrying while the coordinator is
// still loading.
func joinCode(t *testing.T, c *wireConn, group string) int16 {
	t.Helper()
	deadline := time.Now().Add(readTimeout)
	for {
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis, req.ProtocolType = group, 10_000, 10_000, "consumer"
		req.Protocols = append(req.Protocols, kmsg.JoinGroupRequestProtocol{Name: "range", Metadata: []byte{0}})
		code := c.roundTrip(req, 9).(*kmsg.JoinGroupResponse).ErrorCode
		if code != kerr.NotCoordinator.Code && code != kerr.CoordinatorLoadInProgress.Code || time.Now().After(deadline) {
			return code
		}
		time.Sleep(50 * time.Millisecond) // polling the coordinator, as a client would
	}
}

// waitReadyz polls url (a /readyz) until it answers code with a body containing want.
func waitReadyz(t *testing.T, p *proc, url string, code int, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	last := ""
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == code && strings.Contains(string(body), want) {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		}
		select {
		case <-time.After(20 * time.Millisecond): // polling, as a load balancer would
		case <-p.done:
			t.Fatalf("%s exited (%v) while waiting for %s to answer %d", p.name, p.cmd.ProcessState, url, code)
		case <-ctx.Done():
			t.Fatalf("%s did not answer %d %q within %v; last: %s", url, code, want, startTimeout, last)
		}
	}
}

// flood opens n connections from address from to addr and keeps them open until the test ends.
func flood(t *testing.T, addr, from string, n int) []*wireConn {
	t.Helper()
	conns := make([]*wireConn, 0, n)
	for range n {
		conns = append(conns, mustDialWire(t, addr, from))
	}
	return conns
}

func closeAll(conns []*wireConn) {
	for _, c := range conns {
		c.nc.Close()
	}
}

// A connection flood past the agent's open-file limit (256, with --max-connections above it) makes
// accept fail with EMFILE. The agent backs off and goes on, counting the errors; once the flood ends it
// serves a well-behaved client and /readyz answers 200 again. Before, the first EMFILE stopped its
// listener for good while /readyz stayed 200 and it kept its partitions.
func TestHostileAcceptErrors(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), "--agents", "0")
	a := startAgentLimited(t, d, "agent-1", 256, "--max-connections", "100000")
	createTopic(t, a.kafka, "survivor", 1)
	conns := flood(t, a.kafka, "127.0.0.7", 400)
	a.waitLog(t, "kafka listener cannot accept connections; retrying", startTimeout)
	if a.exited() {
		t.Fatalf("the agent exited under the flood: %v", a.cmd.ProcessState)
	}
	closeAll(conns)
	waitReady(t, a.proc, a.http+"/readyz")
	vs := values("survivor", 20)
	acked := kgoProduce(t, a.kafka, "survivor", vs)
	recs := readAll(t, a.kafka, "survivor")
	checkLog(t, recs, vs)
	checkAcked(t, recs, acked)
	if n := metricSum(t, a.http, "streamhouse_kafka_accept_errors_total", ""); n == 0 {
		t.Error("no accept errors counted")
	}
}

// streamhouse dev under a connection flood past its open-file limit (512): its agent's connection cap,
// derived from that limit, stops the flood before it takes the descriptors embedded etcd and the S3
// endpoint need (before, dev exited with status 1 and no message). /readyz says the agent is at
// max.connections; once the flood ends a well-behaved client is served.
func TestHostileDevConnectionFlood(t *testing.T) {
	t.Parallel()
	d := startDevLimited(t, t.TempDir(), 512)
	createTopic(t, d.brokers(t), "survivor", 1)
	conns := flood(t, d.brokers(t), "127.0.0.8", 500)
	waitReadyz(t, d.proc, d.http[0]+"/readyz", http.StatusServiceUnavailable, "max.connections")
	closeAll(conns)
	waitReady(t, d.proc, d.http[0]+"/readyz")
	vs := values("survivor", 20)
	acked := kgoProduce(t, d.brokers(t), "survivor", vs)
	recs := readAll(t, d.brokers(t), "survivor")
	checkLog(t, recs, vs)
	checkAcked(t, recs, acked)
	for _, l := range d.logErrors() {
		t.Errorf("error logged: %s", l)
	}
}
