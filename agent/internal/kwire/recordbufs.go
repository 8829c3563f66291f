package kwire

import (
	"math/bits"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The record bytes of fetch responses are written into pooled buffers: a consumer reading a gigabyte
// a second would otherwise have the agent allocate, zero and collect a gigabyte a second. fetchPartition
// takes one buffer per partition; the connection's writer gives them back once the response is
// encoded (ReleaseRecords), and so does a long poll for an answer it does not send.
//
// Buffers come in power-of-two classes from minPooledRecords to maxPooledRecords; smaller ones are
// allocated as before (a few small allocations cost less than the pool), larger ones are left to the
// collector.
const (
	minPooledRecordsShift = 14 // 16 KiB
	maxPooledRecordsShift = 24 // 16 MiB
)

var recordBufs [maxPooledRecordsShift - minPooledRecordsShift + 1]sync.Pool // of *[]byte

// GetRecordsBuf returns an empty buffer with room for n bytes.
func GetRecordsBuf(n int64) []byte {
	if n < 1<<minPooledRecordsShift || n > 1<<maxPooledRecordsShift {
		return make([]byte, 0, max(n, 0))
	}
	shift := classFor(n)
	if b, ok := recordBufs[shift-minPooledRecordsShift].Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, 1<<shift)
}

// classFor is the class whose buffers hold n bytes: the least shift with 1<<shift >= n.
func classFor(n int64) int { return bits.Len64(uint64(n - 1)) }

// classOf is the class a buffer of capacity c goes back to: the greatest shift with 1<<shift <= c.
func classOf(c int) int { return min(bits.Len(uint(c))-1, maxPooledRecordsShift) }

// PutRecordsBuf gives b back to its class, the largest whose size it holds. b must not be used
// afterwards by anyone.
func PutRecordsBuf(b []byte) {
	c := cap(b)
	if c < 1<<minPooledRecordsShift {
		return
	}
	recordBufs[classOf(c)-minPooledRecordsShift].Put(&b)
}

// ReleaseRecords gives the record buffers of a fetch response back once it is encoded, or dropped
// unsent. Every fetch response's records are buffers fillFetch took for it alone (PatchBatches copies
// what it serves), so no one else holds them; resp must not be used afterwards.
func ReleaseRecords(resp kmsg.Response) {
	fr, ok := resp.(*kmsg.FetchResponse)
	if !ok {
		return
	}
	for i := range fr.Topics {
		for j := range fr.Topics[i].Partitions {
			p := &fr.Topics[i].Partitions[j]
			PutRecordsBuf(p.RecordBatches)
			p.RecordBatches = nil
		}
	}
}
