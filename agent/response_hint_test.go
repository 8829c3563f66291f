package agent

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

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
		got := len(kwire.AppendResponse(nil, 7, resp))
		if hint := responseSizeHint(resp); hint < got {
			t.Errorf("v%d: hint %d below the encoded size %d", v, hint, got)
		}
	}
	if responseSizeHint(kmsg.NewPtrMetadataResponse()) != 0 {
		t.Error("a metadata response has a size hint")
	}
}
