package kwire

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// A pooled buffer always has room for what it was taken for, whichever buffer of its class it is.
func TestRecordBufClasses(t *testing.T) {
	for _, n := range []int64{0, 1, 1<<minPooledRecordsShift - 1, 1 << minPooledRecordsShift, 1<<minPooledRecordsShift + 1,
		100_000, 1 << 20, 1<<20 + 1, 1<<maxPooledRecordsShift - 1, 1 << maxPooledRecordsShift, 1<<maxPooledRecordsShift + 1} {
		if b := GetRecordsBuf(n); len(b) != 0 || int64(cap(b)) < n {
			t.Errorf("GetRecordsBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		if n < 1<<minPooledRecordsShift || n > 1<<maxPooledRecordsShift {
			continue
		}
		// Any buffer put back into n's class holds n.
		if k := classFor(n); 1<<k < n || (k > minPooledRecordsShift && 1<<(k-1) >= n) {
			t.Errorf("classFor(%d) = %d", n, k)
		}
	}
	for _, c := range []int{1 << minPooledRecordsShift, 1<<minPooledRecordsShift + 1, 3 << 20, 1<<maxPooledRecordsShift + 5, 1 << 30} {
		if k := classOf(c); 1<<k > c || k > maxPooledRecordsShift {
			t.Errorf("a buffer of capacity %d goes to class %d, whose buffers must hold %d", c, k, 1<<k)
		}
	}
}

// ReleaseRecords takes every partition's records out of the response it gives back.
func TestReleaseRecords(t *testing.T) {
	resp := kmsg.NewPtrFetchResponse()
	for range 2 {
		rt := kmsg.NewFetchResponseTopic()
		for range 3 {
			p := kmsg.NewFetchResponseTopicPartition()
			p.RecordBatches = GetRecordsBuf(100 << 10)[:10]
			rt.Partitions = append(rt.Partitions, p)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	ReleaseRecords(resp)
	for _, rt := range resp.Topics {
		for _, p := range rt.Partitions {
			if p.RecordBatches != nil {
				t.Fatal("a released response still holds a buffer")
			}
		}
	}
	ReleaseRecords(kmsg.NewPtrMetadataResponse()) // not a fetch: nothing to do
}
