package agent

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
	"github.com/streamhouse/streamhouse/coord"
)

// rawConn is a Kafka connection driven by hand, for the requests a client library would not send
// (malformed, pipelined, acks=0) and for asserting exact per-partition error codes without retries.
type rawConn struct {
	t    *testing.T
	nc   net.Conn
	r    *bufio.Reader
	corr int32
}

// rawIOTimeout bounds every read and write of a rawConn, so that a missing answer fails the test
// instead of hanging it.
const rawIOTimeout = 15 * time.Second

func dialRaw(t *testing.T, a *Agent) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", a.KafkaAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// writeRaw writes bytes as they are.
func (c *rawConn) writeRaw(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(rawIOTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// writeRefused writes b to a connection the agent may close before b is all written: a write cut off
// by the close is what the test expects, not a failure.
func (c *rawConn) writeRefused(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(rawIOTimeout))
	if _, err := c.nc.Write(b); err != nil && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		c.t.Fatalf("write: %v", err)
	}
}

// send writes req at version and returns its correlation id.
func (c *rawConn) send(req kmsg.Request, version int16) int32 {
	c.t.Helper()
	c.corr++
	c.writeRaw(frameOf(req, version, c.corr))
	return c.corr
}

// recv reads the next response frame into resp (whose version must be set) and returns its
// correlation id.
func (c *rawConn) recv(resp kmsg.Response) int32 {
	c.t.Helper()
	corr, err := c.recvErr(resp)
	if err != nil {
		c.t.Fatal(err)
	}
	return corr
}

// recvErr is recv for goroutines other than the test's: it reports instead of failing.
func (c *rawConn) recvErr(resp kmsg.Response) (int32, error) {
	corr, body, err := c.readFrame()
	if err != nil {
		return 0, fmt.Errorf("read %s response: %w", kmsg.NameForKey(resp.Key()), err)
	}
	rd := kbin.Reader{Src: body}
	if resp.IsFlexible() && resp.Key() != apiKeyApiVersions {
		kmsg.SkipTags(&rd)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		return 0, fmt.Errorf("decode %s v%d response: %w", kmsg.NameForKey(resp.Key()), resp.GetVersion(), err)
	}
	return corr, nil
}

func (c *rawConn) readFrame() (int32, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(rawIOTimeout))
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, nil, err
	}
	if len(body) < 4 {
		return 0, nil, fmt.Errorf("response frame of %d bytes", len(body))
	}
	return int32(binary.BigEndian.Uint32(body)), body[4:], nil
}

// roundTrip sends req and reads its response, checking the correlation id.
func (c *rawConn) roundTrip(req kmsg.Request, version int16) kmsg.Response {
	c.t.Helper()
	corr := c.send(req, version)
	resp := req.ResponseKind()
	if got := c.recv(resp); got != corr {
		c.t.Fatalf("%s: response correlation id %d, want %d", kmsg.NameForKey(req.Key()), got, corr)
	}
	return resp
}

// expectClosed asserts that the agent closes the connection (EOF or reset) rather than answering.
func (c *rawConn) expectClosed() {
	c.t.Helper()
	_, _, err := c.readFrame()
	if err == nil {
		c.t.Fatal("got a response, want the connection closed")
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", rawIOTimeout)
	}
}

const (
	produceVersion     int16 = 9
	fetchVersion       int16 = 12
	listOffsetsVersion int16 = 7
)

// produceReq is a produce of one batch per partition given, all to one topic.
func produceReq(topic string, acks int16, parts map[int32][]byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = acks, 30_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	for p, b := range parts {
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = p, b
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// producePart is the one partition's answer of a produce of one partition.
func producePart(t *testing.T, resp kmsg.Response) kmsg.ProduceResponseTopicPartition {
	t.Helper()
	r := resp.(*kmsg.ProduceResponse)
	if len(r.Topics) != 1 || len(r.Topics[0].Partitions) != 1 {
		t.Fatalf("produce response has %d topics, want 1 with 1 partition", len(r.Topics))
	}
	return r.Topics[0].Partitions[0]
}

// produceOne produces batch to topic/partition and returns the partition's answer.
func (c *rawConn) produceOne(topic string, partition int32, batch []byte) kmsg.ProduceResponseTopicPartition {
	c.t.Helper()
	return producePart(c.t, c.roundTrip(produceReq(topic, -1, map[int32][]byte{partition: batch}), produceVersion))
}

// recvProduce reads the answer of a produce sent earlier with send.
func (c *rawConn) recvProduce(corr int32) kmsg.ProduceResponseTopicPartition {
	c.t.Helper()
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = produceVersion
	if got := c.recv(resp); got != corr {
		c.t.Fatalf("produce: response correlation id %d, want %d", got, corr)
	}
	return producePart(c.t, resp)
}

// wantCode fails unless code is want.
func wantCode(t *testing.T, what string, code int16, want *kerr.Error) {
	t.Helper()
	if code != want.Code {
		t.Fatalf("%s: error %s (%d), want %s", what, errName(code), code, want.Message)
	}
}

// wantOK fails unless code is 0.
func wantOK(t *testing.T, what string, code int16) {
	t.Helper()
	if code != 0 {
		t.Fatalf("%s: error %s (%d)", what, errName(code), code)
	}
}

// listOffset asks for one partition's offset at ts (-1 latest, -2 earliest, -3 max timestamp).
func (c *rawConn) listOffset(topic string, partition int32, ts int64) kmsg.ListOffsetsResponseTopicPartition {
	c.t.Helper()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = partition, ts, -1
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	resp := c.roundTrip(req, listOffsetsVersion).(*kmsg.ListOffsetsResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		c.t.Fatalf("list offsets: %d topics in the response, want 1 with 1 partition", len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0]
}

// highWatermark is the partition's latest offset by ListOffsets.
func (c *rawConn) highWatermark(topic string, partition int32) int64 {
	c.t.Helper()
	p := c.listOffset(topic, partition, listLatest)
	wantOK(c.t, "list offsets latest", p.ErrorCode)
	return p.Offset
}

// fetchPart describes one partition of a fetch.
type fetchPart struct {
	partition int32
	offset    int64
	maxBytes  int32
}

// fetchReq is a fetch of one topic's partitions.
func fetchReq(topic string, maxWait, minBytes, maxBytes int32, parts ...fetchPart) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, maxWait, minBytes, maxBytes
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	for _, p := range parts {
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = p.partition, p.offset, p.maxBytes, -1
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	return req
}

// fetchAllReq is a consumer's first fetch of partitions 0..n-1 of topic, as franz-go sends it: v12,
// from offset 0, 1 MiB a partition and 50 MiB in all.
func fetchAllReq(topic string, n int32) *kmsg.FetchRequest {
	var parts []fetchPart
	for p := range n {
		parts = append(parts, fetchPart{p, 0, 1 << 20})
	}
	req := fetchReq(topic, 0, 1, 50<<20, parts...)
	req.Version = 12
	return req
}

// fetchOne fetches one partition without waiting.
func (c *rawConn) fetchOne(topic string, partition int32, offset int64, maxBytes int32) kmsg.FetchResponseTopicPartition {
	c.t.Helper()
	resp := c.roundTrip(fetchReq(topic, 0, 1, maxBytes, fetchPart{partition, offset, maxBytes}), fetchVersion).(*kmsg.FetchResponse)
	wantOK(c.t, "fetch", resp.ErrorCode)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		c.t.Fatalf("fetch: %d topics in the response, want 1 with 1 partition", len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0]
}

// decodeRecords decodes the records of a fetched partition (offsets as served).
func decodeRecords(t *testing.T, sp kmsg.FetchResponseTopicPartition) []*kgo.Record {
	t.Helper()
	if len(sp.RecordBatches) == 0 {
		return nil
	}
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Offset: 0, Partition: sp.Partition},
		&sp, kgo.DefaultDecompressor(), nil)
	if fp.Err != nil {
		t.Fatalf("decode fetched batches: %v", fp.Err)
	}
	return fp.Records
}

// batchStarts walks served batches and returns each one's (base offset, length).
func batchStarts(t *testing.T, b []byte) [][2]int64 {
	t.Helper()
	var out [][2]int64
	for len(b) > 0 {
		n, _, err := kwire.BatchSpan(b)
		if err != nil {
			t.Fatalf("served batches: %v", err)
		}
		out = append(out, [2]int64{int64(binary.BigEndian.Uint64(b)), int64(n)})
		b = b[n:]
	}
	return out
}

// frameOf, valueBatch and values are kwiretest's, under the names the agent's tests use.
var (
	frameOf    = kwiretest.Frame
	valueBatch = kwiretest.ValueBatch
	values     = kwiretest.Values
)

// recordValues lists the values of records, in order.
func recordValues(recs []*kgo.Record) []string {
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = string(r.Value)
	}
	return out
}

// checkLog asserts that the partition holds exactly want, at offsets 0..len(want)-1, read from a.
func checkLog(t *testing.T, a *Agent, topic string, partition int32, want []string) {
	t.Helper()
	c := dialRaw(t, a)
	if hwm := c.highWatermark(topic, partition); hwm != int64(len(want)) {
		t.Fatalf("%s/%d: high watermark %d, want %d", topic, partition, hwm, len(want))
	}
	var got []*kgo.Record
	for next := int64(0); next < int64(len(want)); {
		sp := c.fetchOne(topic, partition, next, 1<<20)
		wantOK(t, "fetch", sp.ErrorCode)
		recs := decodeRecords(t, sp)
		if len(recs) == 0 {
			t.Fatalf("%s/%d: fetch at %d returned nothing below the high watermark", topic, partition, next)
		}
		got = append(got, recs...)
		next = recs[len(recs)-1].Offset + 1
	}
	for i, r := range got {
		if r.Offset != int64(i) {
			t.Fatalf("%s/%d: record %d has offset %d (log not dense)", topic, partition, i, r.Offset)
		}
	}
	if g := strings.Join(recordValues(got), ","); g != strings.Join(want, ",") {
		t.Fatalf("%s/%d: log holds [%s], want [%s]", topic, partition, g, strings.Join(want, ","))
	}
}

// initProducerID gets an idempotent producer id.
func (c *rawConn) initProducerID() (int64, int16) {
	c.t.Helper()
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionTimeoutMillis = 60_000
	resp := c.roundTrip(req, 4).(*kmsg.InitProducerIDResponse)
	wantOK(c.t, "init producer id", resp.ErrorCode)
	return resp.ProducerID, resp.ProducerEpoch
}

// topicTP is the coord partition of a topic the agent knows.
func topicTP(t *testing.T, a *Agent, topic string, partition int32) coord.TP {
	t.Helper()
	tp, ok := a.cache.Topic(topic)
	if !ok {
		t.Fatalf("agent %s does not know topic %s", a.cfg.ID, topic)
	}
	return tp.TP(partition)
}

// waitFor polls cond until it holds. It is for conditions nothing signals (another goroutine's
// progress); the deadline only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitChan waits for ch to close or deliver, failing after a generous deadline.
func waitChan[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(15 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// goroutinesIn counts the goroutines whose stack holds every one of frames.
func goroutinesIn(frames ...string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		all := true
		for _, f := range frames {
			all = all && strings.Contains(g, f)
		}
		if all {
			count++
		}
	}
	return count
}

// metricValue reads one unlabelled counter or gauge of the agent's registry.
func metricValue(t *testing.T, a *Agent, name string) float64 {
	t.Helper()
	mfs, err := a.cfg.Gatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || len(mf.GetMetric()) == 0 {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// startAgent starts an agent made with tc.newAgent (after setting its test hooks).
func startAgent(t *testing.T, a *Agent) *Agent {
	t.Helper()
	if err := a.Start(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return a
}

// startShutdown begins a's graceful shutdown in the background and waits until it has begun; the
// channel delivers Shutdown's result.
func startShutdown(t *testing.T, a *Agent) <-chan error {
	t.Helper()
	shut := make(chan error, 1)
	go func() { shut <- a.Shutdown(testCtx(t)) }()
	waitFor(t, "the shutdown to begin", a.stopping.Load)
	return shut
}

// createLedTopic creates a topic and waits until a leads every partition of it and takes produce
// (Metadata names a leader a moment before the leader has loaded the partition's state; clients
// retry that NOT_LEADER_OR_FOLLOWER, raw requests in these tests do not).
func createLedTopic(t *testing.T, cl *kgo.Client, a *Agent, name string, partitions int32, configs map[string]*string) {
	t.Helper()
	createTopic(t, cl, name, partitions, configs)
	for p := range partitions {
		tp := topicTP(t, a, name, p)
		waitFor(t, fmt.Sprintf("%s to lead %s/%d", a.cfg.ID, name, p), func() bool { return a.lead.leaders.get(tp) != nil })
	}
}

// ledTopicConn creates a topic of one partition through a franz-go client of a, waits until a leads
// it, and returns a raw connection to a.
func ledTopicConn(t *testing.T, a *Agent, topic string) *rawConn {
	t.Helper()
	createLedTopic(t, kgoClient(t, nil, a), a, topic, 1, nil)
	return dialRaw(t, a)
}
