package kwire

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// FuzzProduceShape: ProduceShape never panics, and never refuses as malformed a frame the decoder takes.
func FuzzProduceShape(f *testing.F) {
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 30_000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = kwiretest.ValueBatch(-1, -1, -1, nil, "v")
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	for _, v := range []int16{3, 8, 9, 11} {
		f.Add(kwiretest.Frame(req, v, 1)[4:], v)
	}
	f.Fuzz(func(t *testing.T, body []byte, version int16) {
		if version < 0 || version > 11 || len(body) < 8 {
			return
		}
		_, err := ProduceShape(body, version)
		head := []byte{0, byte(kmsg.Produce), byte(version >> 8), byte(version)} // key and version
		h, parsed, perr := ParseRequest(append(head, body[4:]...), testVersions)
		if perr == nil && parsed != nil && h.Version == version && err != nil {
			t.Fatalf("v%d: decoder took it, ProduceShape: %v", version, err)
		}
	})
}
