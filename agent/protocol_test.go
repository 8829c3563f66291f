package agent

import (
	"bytes"
	"encoding/binary"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// rawHeader is a request header (v1: key, version, correlation id, client id) for hand-made frames.
func rawHeader(key, version int16, corr int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, uint16(key))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, 4)
	return append(b, "test"...)
}

// sized prefixes body with its size, as a frame.
func sized(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// A frame the agent cannot serve closes that one connection and no other: a second client on the
// same agent keeps working throughout.
func TestBadFrameClosesOnlyItsConnection(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "robust", 1, nil)
	good := dialRaw(t, a)
	good.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)

	ff := bytes.Repeat([]byte{0xff}, 64)
	for name, frame := range map[string][]byte{
		"garbage header":      sized(ff[:8]),
		"garbage body":        sized(append(rawHeader(int16(kmsg.Metadata), 12, 1), append([]byte{0}, ff...)...)),
		"truncated produce":   sized(frameOf(produceReq("robust", -1, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "x")}), produceVersion, 1)[4:40]),
		"unsupported api":     frameOf(kmsg.NewPtrElectLeadersRequest(), 2, 1),
		"unknown api":         sized(rawHeader(999, 0, 1)),
		"unsupported version": frameOf(kmsg.NewPtrMetadataRequest(), 13, 1),
		"oversized prefix":    binary.BigEndian.AppendUint32(nil, 0x7fffffff),
		"negative prefix":     binary.BigEndian.AppendUint32(nil, 0xffffffff),
		"undersized prefix":   binary.BigEndian.AppendUint32(nil, 3),
	} {
		t.Run(name, func(t *testing.T) {
			bad := dialRaw(t, a)
			bad.writeRaw(frame)
			bad.expectClosed()
			good.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3)
		})
	}
	p := good.produceOne("robust", 0, valueBatch(-1, -1, -1, nil, "still-fine"))
	wantOK(t, "produce on the surviving connection", p.ErrorCode)
	checkLog(t, a, "robust", 0, []string{"still-fine"})
}

// A hostile size prefix is refused before the body is allocated.
func TestReadFrameDoesNotAllocateForHugePrefix(t *testing.T) {
	frame := binary.BigEndian.AppendUint32(nil, 0x7ffffff0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if _, err := kwire.ReadFrame(bytes.NewReader(frame), DefaultMaxRequestBytes); err == nil {
		t.Fatal("a 2 GiB frame was accepted")
	}
	runtime.ReadMemStats(&after)
	// Other goroutines (the embedded etcd) allocate meanwhile, but nowhere near the 2 GiB asked for.
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
		t.Fatalf("refusing a huge frame allocated %d bytes", grew)
	}
}

// ApiVersions above the agent's range is answered at v0 with UNSUPPORTED_VERSION and the versions
// of ApiVersions it serves (KIP-511), so that the client can retry at one of them.
func TestApiVersionsTooNew(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := dialRaw(t, a)
	corr := c.send(kmsg.NewPtrApiVersionsRequest(), 5)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	if got := c.recv(resp); got != corr {
		t.Fatalf("correlation id %d, want %d", got, corr)
	}
	wantCode(t, "ApiVersions v5", resp.ErrorCode, kerr.UnsupportedVersion)
	found := false
	for _, k := range resp.ApiKeys {
		if k.ApiKey == apiKeyApiVersions {
			found = k.MinVersion == 0 && k.MaxVersion == maxVersion(apiKeyApiVersions)
		}
	}
	if !found {
		t.Fatalf("ApiVersions range missing from the answer: %+v", resp.ApiKeys)
	}
	// The connection stays usable at a version the agent serves.
	got := c.roundTrip(kmsg.NewPtrApiVersionsRequest(), 3).(*kmsg.ApiVersionsResponse)
	wantOK(t, "ApiVersions v3", got.ErrorCode)
}

// Produce errors are per-partition Kafka codes on a connection that stays open, and store nothing.
func TestProduceErrorCodes(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	small := "1024"
	createLedTopic(t, cl, a, "codes", 2, nil)
	createLedTopic(t, cl, a, "small", 1, map[string]*string{"max.message.bytes": &small})
	good := valueBatch(-1, -1, -1, nil, "ok")
	corrupt := append([]byte(nil), good...)
	corrupt[len(corrupt)-1] ^= 0xff
	magic1 := append([]byte(nil), good...)
	magic1[16] = 1 // the magic byte
	big := valueBatch(-1, -1, -1, nil, string(make([]byte, 2048)))
	c := dialRaw(t, a)
	for _, tt := range []struct {
		name string
		req  *kmsg.ProduceRequest
		want *kerr.Error
	}{
		{"acks=2", produceReq("codes", 2, map[int32][]byte{0: good}), kerr.InvalidRequiredAcks},
		{"missing topic", produceReq("nope", -1, map[int32][]byte{0: good}), kerr.UnknownTopicOrPartition},
		{"partition out of range", produceReq("codes", -1, map[int32][]byte{2: good}), kerr.UnknownTopicOrPartition},
		{"negative partition", produceReq("codes", -1, map[int32][]byte{-1: good}), kerr.UnknownTopicOrPartition},
		{"two batches", produceReq("codes", -1, map[int32][]byte{0: append(append([]byte(nil), good...), good...)}), kerr.InvalidRecord},
		{"corrupt crc", produceReq("codes", -1, map[int32][]byte{0: corrupt}), kerr.CorruptMessage},
		{"magic 1", produceReq("codes", -1, map[int32][]byte{0: magic1}), kerr.UnsupportedForMessageFormat},
		{"empty records", produceReq("codes", -1, map[int32][]byte{0: {}}), kerr.CorruptMessage},
		{"too large", produceReq("small", -1, map[int32][]byte{0: big}), kerr.MessageTooLarge},
	} {
		p := producePart(t, c.roundTrip(tt.req, produceVersion))
		wantCode(t, tt.name, p.ErrorCode, tt.want)
	}
	for p := range int32(2) {
		if hwm := c.highWatermark("codes", p); hwm != 0 {
			t.Fatalf("codes/%d: high watermark %d after refused produce, want 0", p, hwm)
		}
	}
	if hwm := c.highWatermark("small", 0); hwm != 0 {
		t.Fatalf("small/0: high watermark %d after refused produce, want 0", hwm)
	}
	// One bad partition does not spoil the good one in the same request.
	resp := c.roundTrip(produceReq("codes", -1, map[int32][]byte{0: good, 1: corrupt}), produceVersion).(*kmsg.ProduceResponse)
	for _, sp := range resp.Topics[0].Partitions {
		want := int16(0)
		if sp.Partition == 1 {
			want = kerr.CorruptMessage.Code
		}
		if sp.ErrorCode != want {
			t.Fatalf("mixed produce, partition %d: %s, want code %d", sp.Partition, errName(sp.ErrorCode), want)
		}
	}
	checkLog(t, a, "codes", 0, []string{"ok"})
}

// acks=0 gets no answer: the next response on the connection is the next request's. Responses are
// in request order and the acks=0 produce's slot completes only once it is committed, so by then its
// record is visible.
func TestProduceAcksZeroGetsNoResponse(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "fire", 1, nil)
	c := dialRaw(t, a)
	c.send(produceReq("fire", 0, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "forgotten")}), produceVersion)
	next := c.send(kmsg.NewPtrApiVersionsRequest(), 3)
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 3
	if got := c.recv(resp); got != next {
		t.Fatalf("first response has correlation id %d, want %d (the acks=0 produce must get none)", got, next)
	}
	checkLog(t, a, "fire", 0, []string{"forgotten"})
}

// A failed acks=0 produce gets no answer either, but its connection is closed, as Kafka does, so that
// the client refreshes its metadata instead of writing into the void.
func TestProduceAcksZeroFailureClosesConnection(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := dialRaw(t, a)
	c.send(produceReq("no-such-topic", 0, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "lost")}), produceVersion)
	c.expectClosed()
}
