package segstore

import (
	"bytes"
	"hash/crc32"
	"slices"
	"testing"
)

// A segment finished from its plan and block CRCs is the object BuildPartSegment makes from the same
// batches, byte for byte.
func TestFinishPartSegment(t *testing.T) {
	t.Parallel()
	r := newTestRun(100, 40, 3, 5000, 2)
	want, _ := buildTestSegment(t, r, 16<<10)
	plan, err := PlanPartSegment(testTopic, 3, r.spans, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	data := r.bytes()
	crcs := make([]uint32, len(plan.Blocks))
	for i, b := range plan.Blocks {
		off := b.Pos - PartHeaderLen
		crcs[i] = crc32.Checksum(data[off:off+int64(b.Len)], castagnoli)
	}
	head, tail, seg, err := FinishPartSegment(plan, crcs)
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Concat(head, data, tail)
	if !bytes.Equal(got, want) || int64(len(got)) != seg.Size {
		t.Fatalf("finished segment (%d bytes) differs from the built one (%d)", len(got), len(want))
	}
	if _, _, _, err := FinishPartSegment(plan, crcs[1:]); err == nil {
		t.Error("finished with a CRC missing")
	}
}
