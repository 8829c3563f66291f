package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// frameOf encodes req as a client would send it.
func frameOf(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	body := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	body = binary.BigEndian.AppendUint16(body, uint16(version))
	body = binary.BigEndian.AppendUint32(body, uint32(corr))
	body = binary.BigEndian.AppendUint16(body, 4)
	body = append(body, "test"...)
	if req.IsFlexible() {
		body = append(body, 0)
	}
	body = req.AppendTo(body)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

func TestParseRequest(t *testing.T) {
	md := kmsg.NewPtrMetadataRequest()
	topic := "t"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	for _, v := range []int16{0, 4, 9, 12} {
		frame := frameOf(md, v, 7)
		body, err := readFrame(bytes.NewReader(frame), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		h, req, err := parseRequest(body)
		if err != nil || req == nil {
			t.Fatalf("v%d: parse: %v (req %v)", v, err, req)
		}
		got := req.(*kmsg.MetadataRequest)
		if h.corr != 7 || h.clientID != "test" || len(got.Topics) != 1 || *got.Topics[0].Topic != "t" {
			t.Fatalf("v%d: parsed %+v %+v", v, h, got)
		}
	}
}

func TestParseRequestUnsupported(t *testing.T) {
	// ElectLeaders is a real Kafka API the agent does not serve (placement elects); Metadata v13 is beyond our range.
	for _, frame := range [][]byte{frameOf(kmsg.NewPtrElectLeadersRequest(), 2, 1), frameOf(kmsg.NewPtrMetadataRequest(), 13, 1)} {
		h, req, err := parseRequest(frame[4:])
		if err != nil || req != nil {
			t.Fatalf("key %d v%d: want unsupported (nil, nil), got %v, %v", h.key, h.version, req, err)
		}
	}
	// ApiVersions above our range is answered (KIP-511), not refused.
	h, req, err := parseRequest(frameOf(kmsg.NewPtrApiVersionsRequest(), 3, 1)[4:])
	if err != nil || req == nil || h.version != 3 {
		t.Fatalf("ApiVersions v3: %v, %v", req, err)
	}
}

func TestReadFrameRefusesHugeSizes(t *testing.T) {
	for _, size := range []uint32{0, 7, 1 << 31, 200 << 20} {
		frame := binary.BigEndian.AppendUint32(nil, size)
		if _, err := readFrame(bytes.NewReader(frame), 100<<20); !errors.Is(err, errFrame) {
			t.Fatalf("size %d: want errFrame, got %v", size, err)
		}
	}
}

// FuzzParseRequest drives the frame reader and request parser with arbitrary bytes: nothing may
// panic, and whatever parses must re-encode.
func FuzzParseRequest(f *testing.F) {
	md := kmsg.NewPtrMetadataRequest()
	f.Add(frameOf(md, 12, 1))
	f.Add(frameOf(kmsg.NewPtrApiVersionsRequest(), 3, 2))
	f.Add(frameOf(kmsg.NewPtrProduceRequest(), 9, 3))
	f.Add(frameOf(kmsg.NewPtrFetchRequest(), 16, 4))
	f.Add(frameOf(kmsg.NewPtrCreateTopicsRequest(), 7, 5))
	f.Add([]byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := readFrame(bytes.NewReader(data), 1<<20)
		if err != nil {
			return
		}
		_, req, err := parseRequest(body)
		if err != nil || req == nil {
			return
		}
		_ = req.AppendTo(nil)
	})
}

// A fetch response is written into one buffer of the hinted size, never grown: the hint must not be
// below the encoded size at any version.
func TestResponseSizeHintCoversFetch(t *testing.T) {
	for v := int16(0); v <= 16; v++ {
		resp := kmsg.NewPtrFetchResponse()
		resp.Version = v
		for ti := range 3 {
			rt := kmsg.NewFetchResponseTopic()
			rt.Topic = strings.Repeat("t", 200*ti+1)
			for pi := range 40 {
				rp := kmsg.NewFetchResponseTopicPartition()
				rp.Partition = int32(pi)
				rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = 1<<40, 1<<40, 1<<39
				rp.RecordBatches = make([]byte, pi*1000)
				if pi%7 == 0 {
					rp.AbortedTransactions = make([]kmsg.FetchResponseTopicPartitionAbortedTransaction, 3)
				}
				rp.PreferredReadReplica = 2
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		got := len(appendResponse(nil, 7, resp))
		if hint := responseSizeHint(resp); hint < got {
			t.Errorf("v%d: hint %d below the encoded size %d", v, hint, got)
		}
	}
	if responseSizeHint(kmsg.NewPtrMetadataResponse()) != 0 {
		t.Error("a metadata response has a size hint")
	}
}
