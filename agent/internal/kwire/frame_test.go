package kwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

func TestParseRequest(t *testing.T) {
	md := kmsg.NewPtrMetadataRequest()
	topic := "t"
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: &topic}}
	for _, v := range []int16{0, 4, 9, 12} {
		frame := kwiretest.Frame(md, v, 7)
		body, err := ReadFrame(bytes.NewReader(frame), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		h, req, err := ParseRequest(body, testVersions)
		if err != nil || req == nil {
			t.Fatalf("v%d: parse: %v (req %v)", v, err, req)
		}
		got := req.(*kmsg.MetadataRequest)
		if h.Corr != 7 || h.ClientID != "test" || len(got.Topics) != 1 || *got.Topics[0].Topic != "t" {
			t.Fatalf("v%d: parsed %+v %+v", v, h, got)
		}
	}
}

func TestParseRequestUnsupported(t *testing.T) {
	// ElectLeaders is a real Kafka API the agent does not serve (placement elects); Metadata v13 is beyond our range.
	for _, frame := range [][]byte{kwiretest.Frame(kmsg.NewPtrElectLeadersRequest(), 2, 1), kwiretest.Frame(kmsg.NewPtrMetadataRequest(), 13, 1)} {
		h, req, err := ParseRequest(frame[4:], testVersions)
		if err != nil || req != nil {
			t.Fatalf("key %d v%d: want unsupported (nil, nil), got %v, %v", h.Key, h.Version, req, err)
		}
	}
	// ApiVersions above our range is answered (KIP-511), not refused.
	h, req, err := ParseRequest(kwiretest.Frame(kmsg.NewPtrApiVersionsRequest(), 3, 1)[4:], testVersions)
	if err != nil || req == nil || h.Version != 3 {
		t.Fatalf("ApiVersions v3: %v, %v", req, err)
	}
}

func TestReadFrameRefusesHugeSizes(t *testing.T) {
	for _, size := range []uint32{0, 7, 1 << 31, 200 << 20} {
		frame := binary.BigEndian.AppendUint32(nil, size)
		if _, err := ReadFrame(bytes.NewReader(frame), 100<<20); !errors.Is(err, ErrFrame) {
			t.Fatalf("size %d: want ErrFrame, got %v", size, err)
		}
	}
}

// FuzzParseRequest drives the frame reader and request parser with arbitrary bytes: nothing may
// panic, and whatever parses must re-encode.
func FuzzParseRequest(f *testing.F) {
	md := kmsg.NewPtrMetadataRequest()
	f.Add(kwiretest.Frame(md, 12, 1))
	f.Add(kwiretest.Frame(kmsg.NewPtrApiVersionsRequest(), 3, 2))
	f.Add(kwiretest.Frame(kmsg.NewPtrProduceRequest(), 9, 3))
	f.Add(kwiretest.Frame(kmsg.NewPtrFetchRequest(), 16, 4))
	f.Add(kwiretest.Frame(kmsg.NewPtrCreateTopicsRequest(), 7, 5))
	f.Add([]byte{0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		body, err := ReadFrame(bytes.NewReader(data), 1<<20)
		if err != nil {
			return
		}
		_, req, err := ParseRequest(body, testVersions)
		if err != nil || req == nil {
			return
		}
		_ = req.AppendTo(nil)
	})
}

// testVersions is a server's table, as the agent's: Metadata up to v12, ApiVersions up to v4.
var testVersions = versionTable{
	int16(kmsg.Produce):      11,
	int16(kmsg.Fetch):        16,
	int16(kmsg.Metadata):     12,
	int16(kmsg.ApiVersions):  4,
	int16(kmsg.CreateTopics): 7,
}

// versionTable serves versions 0 to the highest of each API it lists.
type versionTable map[int16]int16

func (t versionTable) Supported(key, version int16) bool {
	max, ok := t[key]
	return ok && version >= 0 && version <= max
}

func (t versionTable) Max(key int16) int16 { return t[key] }
