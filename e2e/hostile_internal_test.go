package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"math"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// What a client that is not an agent can do to the sequence API (issue 16, item 1) and what a batch
// whose header lies can do to offsets (item 2), against a real streamhouse dev process, with a small
// raw-socket client: nothing. Helpers here start with "hi" (hostile internal) to stay apart from the
// other hostile-client tests.

// hiIOTimeout bounds every read and write of a raw connection here.
const hiIOTimeout = 15 * time.Second

// hiConn is a raw TCP connection to an agent's Kafka or internal listener.
type hiConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func hiDial(t *testing.T, addr string) *hiConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, hiIOTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &hiConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *hiConn) write(b []byte) {
	c.t.Helper()
	_ = c.nc.SetWriteDeadline(time.Now().Add(hiIOTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expectClosed fails the test unless the agent closes the connection without sending anything more.
func (c *hiConn) expectClosed() {
	c.t.Helper()
	_ = c.nc.SetReadDeadline(time.Now().Add(hiIOTimeout))
	b, err := io.ReadAll(c.r)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.t.Fatalf("connection still open after %v", hiIOTimeout)
	}
	if len(b) > 0 {
		c.t.Fatalf("got %d bytes (%x...), want the connection closed", len(b), b[:min(len(b), 16)])
	}
}

// hiSequenceFrame is a sequence request (API key 32700, v0) as the probe sent it: appends of
// 2^31-1 records each, in an object nobody wrote, with every field an agent of an earlier version
// sent.
func hiSequenceFrame(topicID [16]byte, appends int) []byte {
	body := binary.BigEndian.AppendUint16(nil, 32700)
	body = binary.BigEndian.AppendUint16(body, 0)
	body = binary.BigEndian.AppendUint32(body, 1)
	body = binary.BigEndian.AppendUint16(body, 5)
	body = append(body, "probe"...)
	body = append(body, `{"appends":[`...)
	for i := range appends {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"topic":"%x","partition":0,"object":"seg/01J0000000000000000000000-nobody","pos":32,`+
			`"len":70,"crc":1,"records":%d,"maxTs":0,"pid":-1,"pepoch":-1,"seq":-1}`, topicID, math.MaxInt32)
	}
	body = append(body, "]}"...)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// hiTopicID is topic's id, as Metadata tells it.
func hiTopicID(t *testing.T, brokers, topic string) [16]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	md, err := kadm.NewClient(newKgo(t, brokers)).Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	return md.Topics[topic].ID
}

// hiProduce sends one batch to topic's partition 0 as it is, and returns the partition's error code.
func hiProduce(t *testing.T, brokers, topic string, batch []byte) int16 {
	t.Helper()
	cl := newKgo(t, brokers)
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, int32(cliTimeout/time.Millisecond)
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	ctx, cancel := context.WithTimeout(context.Background(), cliTimeout)
	defer cancel()
	resp, err := cl.Request(ctx, req)
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	pr := resp.(*kmsg.ProduceResponse)
	if len(pr.Topics) != 1 || len(pr.Topics[0].Partitions) != 1 {
		t.Fatalf("produce answer %+v", pr)
	}
	return pr.Topics[0].Partitions[0].ErrorCode
}

// hiBatch is a v2 batch of values, its records compressed with codec (nil: none), whose header
// declares count records, with a CRC that is right for whatever it holds.
func hiBatch(t *testing.T, codec *kgo.CompressionCodec, count int32, values ...string) []byte {
	t.Helper()
	var records []byte
	for i, v := range values {
		rec := []byte{0}
		rec = binary.AppendVarint(rec, 0)        // timestamp delta
		rec = binary.AppendVarint(rec, int64(i)) // offset delta
		rec = binary.AppendVarint(rec, -1)       // key: null
		rec = binary.AppendVarint(rec, int64(len(v)))
		rec = append(rec, v...)
		rec = binary.AppendVarint(rec, 0) // headers
		records = append(append(records, binary.AppendVarint(nil, int64(len(rec)))...), rec...)
	}
	var attrs int16
	if codec != nil {
		c, err := kgo.DefaultCompressor(*codec)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		out, used := c.Compress(&buf, records)
		records, attrs = bytes.Clone(out), int16(used)
	}
	now := time.Now().UnixMilli()
	b := kmsg.RecordBatch{PartitionLeaderEpoch: -1, Magic: 2, Attributes: attrs, LastOffsetDelta: count - 1,
		FirstTimestamp: now, MaxTimestamp: now, ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: count,
		Records: records}
	b.Length = int32(49 + len(records)) // the header after the length field is 49 bytes
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// The sequence API is not served on the Kafka listener: the three anonymous appends of
// 2^31-1 records each close their connections, the high watermark does not move, and the partition
// goes on taking and serving records at dense offsets.
func TestHostileInternalSequenceOnClientListener(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	brokers := d.brokers(t)
	createTopic(t, brokers, "hi-client", 1)
	want := produceValues(t, newKgo(t, brokers), "hi-client", "before", 3, 1)
	id := hiTopicID(t, brokers, "hi-client")
	for range 3 {
		c := hiDial(t, brokers)
		c.write(hiSequenceFrame(id, 1))
		c.expectClosed()
	}
	if end := endOffsets(t, brokers, "hi-client")[0]; end != 3 {
		t.Fatalf("high watermark %d after the anonymous sequence requests, want 3", end)
	}
	maps.Copy(want, produceValues(t, newKgo(t, brokers), "hi-client", "after", 2, 1))
	checkLog(t, readAll(t, brokers, "hi-client"), slices.Sorted(maps.Keys(want)))
}

// The internal listener serves only agents that prove the cluster secret: a sequence request sent
// straight to it, and a handshake with a made-up proof, are closed and counted, and move nothing.
func TestHostileInternalListenerWithoutSecret(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	brokers, internal := d.brokers(t), d.line(t, "internal address: ")
	createTopic(t, brokers, "hi-internal", 1)
	produceValues(t, newKgo(t, brokers), "hi-internal", "v", 2, 1)
	id := hiTopicID(t, brokers, "hi-internal")

	c := hiDial(t, internal)
	c.write(hiSequenceFrame(id, 3))
	c.expectClosed()

	forger := hiDial(t, internal)
	hello := append([]byte("SHI1"), make([]byte, 32)...)
	forger.write(append(binary.BigEndian.AppendUint16(hello, 5), "dev-1"...)) // claims to be the agent itself
	challenge := make([]byte, 64)
	_ = forger.nc.SetReadDeadline(time.Now().Add(hiIOTimeout))
	if _, err := io.ReadFull(forger.r, challenge); err != nil {
		t.Fatalf("reading the listener's challenge: %v", err)
	}
	forger.write(make([]byte, 32)) // a proof made up
	forger.write(hiSequenceFrame(id, 1))
	forger.expectClosed()

	if end := endOffsets(t, brokers, "hi-internal")[0]; end != 2 {
		t.Fatalf("high watermark %d, want 2", end)
	}
	if got := scrapeMetrics(t, d.http[0]+"/metrics")["streamhouse_internal_auth_failures_total"]; got != 2 {
		t.Fatalf("streamhouse_internal_auth_failures_total = %v, want 2", got)
	}
}

// A batch whose header declares more records than it holds, uncompressed (the 69-byte batch
// of one record declaring 2^31-1) or compressed, is refused with INVALID_RECORD; offsets stay dense.
func TestHostileInternalInflatedBatch(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	brokers := d.brokers(t)
	createTopic(t, brokers, "hi-inflated", 1)
	wantOK := func(what string, code int16) {
		t.Helper()
		if code != 0 {
			t.Fatalf("%s: %v, want no error", what, kerr.ErrorForCode(code))
		}
	}
	// Through a client that retries, as the partition's leader may still be loading it.
	want := produceValues(t, newKgo(t, brokers), "hi-inflated", "first", 1, 1)
	inflated := hiBatch(t, nil, math.MaxInt32, "x")
	if len(inflated) != 69 {
		t.Fatalf("the inflated batch is %d bytes, want 69", len(inflated))
	}
	gzip, zstd := kgo.GzipCompression(), kgo.ZstdCompression()
	for what, batch := range map[string][]byte{
		"one record declaring 2^31-1":          inflated,
		"gzip batch of 3 records declaring 5":  hiBatch(t, &gzip, 5, "a", "b", "c"),
		"zstd batch of 3 records declaring 50": hiBatch(t, &zstd, 50, "a", "b", "c"),
	} {
		if code := hiProduce(t, brokers, "hi-inflated", batch); code != kerr.InvalidRecord.Code {
			t.Errorf("%s: %v, want %v", what, kerr.ErrorForCode(code), kerr.InvalidRecord)
		}
	}
	wantOK("good compressed batch", hiProduce(t, brokers, "hi-inflated", hiBatch(t, &gzip, 2, "second", "third")))
	if end := endOffsets(t, brokers, "hi-inflated")[0]; end != 3 {
		t.Fatalf("high watermark %d, want 3", end)
	}
	want["second"], want["third"] = true, true
	checkLog(t, readAll(t, brokers, "hi-inflated"), slices.Sorted(maps.Keys(want)))
}
