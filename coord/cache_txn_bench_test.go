package coord

import (
	"fmt"
	"testing"
)

// BenchmarkTxnState is what a read_committed fetch adds per partition: the last stable offset and the
// aborted transactions derived from the view's snapshots and tail, for tails of growing length (one
// transactional batch of one of 100 producers per entry, an abort marker every 10 entries).
func BenchmarkTxnState(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("tail=%d", n), func(b *testing.B) {
			p := &partition{snapshots: map[int64]ProducerState{}}
			for i := range n {
				pid := int64(i % 100)
				off := int64(i)
				te := tailEntry{IndexEntry: IndexEntry{BaseOffset: off, LastOffset: off}}
				if i%10 == 9 {
					te.Marker = &TxnMarker{ProducerID: pid, FirstOffset: off - 9}
				} else {
					te.batches = []ProducerBatch{{ID: pid, FirstOffset: off, LastOffset: off, Transactional: true}}
				}
				p.tail = append(p.tail, te)
			}
			p.hwm = int64(n)
			b.ReportAllocs()
			for b.Loop() {
				_ = p.stable()
				_ = p.aborted(0)
			}
		})
	}
}
