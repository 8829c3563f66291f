package segstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"
)

var testTopic = [16]byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}

// testBatch returns a record batch (magic 2) holding offsets [base, base+delta] and payload bytes of
// records (not parsed by segstore: any bytes do).
func testBatch(base int64, delta int32, maxTS int64, payload int) []byte {
	b := make([]byte, batchHeaderLen+payload)
	be := binary.BigEndian
	be.PutUint64(b[0:], uint64(base))
	be.PutUint32(b[8:], uint32(len(b)-batchLogHeader))
	be.PutUint32(b[12:], 7) // leader epoch
	b[16] = batchMagic
	be.PutUint32(b[23:], uint32(delta))
	be.PutUint64(b[27:], uint64(maxTS-int64(delta)))
	be.PutUint64(b[35:], uint64(maxTS))
	for i := batchHeaderLen; i < len(b); i++ {
		b[i] = byte(base) + byte(i)
	}
	return b
}

// testRun is a run of batches: its spans (one per batch) and each batch's bytes.
type testRun struct {
	spans   []Span
	batches [][]byte
}

// newTestRun makes n batches from offset first, each of delta+1 offsets and payload bytes, with a
// gap of skip offsets between batches (as a log cleaner leaves).
func newTestRun(first int64, n int, delta int32, payload int, skip int64) testRun {
	var r testRun
	off := first
	for i := range n {
		b := testBatch(off, delta, 1_000+off, payload+i%3)
		r.batches = append(r.batches, b)
		r.spans = append(r.spans, Span{Len: int32(len(b)), FirstOffset: off, LastOffset: off + int64(delta), MaxTimestamp: 1_000 + off})
		off += int64(delta) + 1 + skip
	}
	return r
}

func (r testRun) bytes() []byte { return slices.Concat(r.batches...) }

// buildTestSegment plans and builds the segment of r (one data slice per batch) with blockTarget.
func buildTestSegment(t testing.TB, r testRun, blockTarget int) ([]byte, *PartSegment) {
	t.Helper()
	plan, err := PlanPartSegment(testTopic, 3, r.spans, blockTarget)
	if err != nil {
		t.Fatalf("PlanPartSegment: %v", err)
	}
	ps, seg, err := BuildPartSegment(plan, r.batches)
	if err != nil {
		t.Fatalf("BuildPartSegment: %v", err)
	}
	obj := parts(ps).concat()
	if int64(len(obj)) != plan.Size || seg.Size != plan.Size {
		t.Fatalf("built %d bytes, segment says %d, the plan %d", len(obj), seg.Size, plan.Size)
	}
	return obj, seg
}

func TestPartSegmentRoundTrip(t *testing.T) {
	t.Parallel()
	big := newTestRun(500, 1, 9, 100_000, 0)
	for _, tc := range []struct {
		name   string
		run    testRun
		target int
		blocks int
	}{
		{"one batch", newTestRun(0, 1, 0, 10, 0), 0, 1},
		{"one block", newTestRun(100, 20, 4, 100, 0), 0, 1},
		{"many blocks", newTestRun(100, 40, 4, 100, 0), 1_000, 7},
		{"offset gaps", newTestRun(7, 30, 2, 50, 5), 500, 8},
		{"batch over target", testRun{
			spans:   slices.Concat(newTestRun(0, 3, 0, 10, 0).spans, big.spans, newTestRun(510, 2, 0, 10, 0).spans),
			batches: slices.Concat(newTestRun(0, 3, 0, 10, 0).batches, big.batches, newTestRun(510, 2, 0, 10, 0).batches),
		}, 1_000, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj, seg := buildTestSegment(t, tc.run, tc.target)
			if len(seg.Blocks) != tc.blocks {
				t.Errorf("%d blocks, want %d", len(seg.Blocks), tc.blocks)
			}
			got, err := DecodePartSegment(obj)
			if err != nil {
				t.Fatalf("DecodePartSegment: %v", err)
			}
			if !equalSegments(got, seg) {
				t.Fatalf("decoded %+v, built %+v", got, seg)
			}
			if got.BaseOffset != tc.run.spans[0].FirstOffset || got.LastOffset != tc.run.spans[len(tc.run.spans)-1].LastOffset {
				t.Errorf("offsets [%d, %d], want the batches'", got.BaseOffset, got.LastOffset)
			}
			if !bytes.Equal(obj[PartHeaderLen:seg.Footer.Pos], tc.run.bytes()) {
				t.Error("the object's batches are not the batches given, back to back")
			}
			spans, err := BatchSpans(obj[PartHeaderLen:seg.Footer.Pos])
			if err != nil || !slices.Equal(spans, tc.run.spans) {
				t.Errorf("BatchSpans of the batch region = %v, %v; want %v", spans, err, tc.run.spans)
			}
			checkOpenFromEnd(t, obj, seg)
		})
	}
}

func equalSegments(a, b *PartSegment) bool {
	return a.PartHeader == b.PartHeader && slices.Equal(a.Blocks, b.Blocks) && a.Footer == b.Footer && a.Size == b.Size
}

// checkOpenFromEnd opens obj as a reader without an index does: trailer, footer, then each block.
func checkOpenFromEnd(t *testing.T, obj []byte, want *PartSegment) {
	t.Helper()
	f, err := DecodePartTrailer(obj[len(obj)-PartTrailerLen-5:], int64(len(obj)))
	if err != nil || f != want.Footer {
		t.Fatalf("DecodePartTrailer = %+v, %v; want %+v", f, err, want.Footer)
	}
	blocks, err := DecodePartFooter(obj[f.Pos:f.Pos+int64(f.Len)], f)
	if err != nil || !slices.Equal(blocks, want.Blocks) {
		t.Fatalf("DecodePartFooter = %v, %v", blocks, err)
	}
	for i, b := range blocks {
		if err := VerifyBlock(obj[b.Pos:b.Pos+int64(b.Len)], b); err != nil {
			t.Errorf("VerifyBlock(%d): %v", i, err)
		}
	}
	if h, err := DecodePartHeader(obj); err != nil || h != want.PartHeader {
		t.Errorf("DecodePartHeader = %+v, %v", h, err)
	}
}

// TestPlanPartSegmentBlocks pins how spans are grouped into blocks.
func TestPlanPartSegmentBlocks(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		lens   []int32
		target int
		want   []int32
	}{
		{"fill to the target", []int32{100, 100, 100, 100}, 200, []int32{200, 200}},
		{"never over the target", []int32{100, 101, 100}, 200, []int32{100, 101, 100}},
		{"a large span alone", []int32{100, 100, 300, 100, 100}, 200, []int32{200, 300, 200}},
		{"large spans in a row", []int32{300, 300}, 200, []int32{300, 300}},
		{"default target", []int32{40 << 10, 20 << 10, 10 << 10}, 0, []int32{60 << 10, 10 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spans := make([]Span, len(tc.lens))
			for i, n := range tc.lens {
				spans[i] = Span{Len: n, FirstOffset: int64(10 * i), LastOffset: int64(10*i + 4), MaxTimestamp: int64(100 - i)}
			}
			plan, err := PlanPartSegment(testTopic, 0, spans, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			var lens []int32
			pos := int64(PartHeaderLen)
			for _, b := range plan.Blocks {
				lens = append(lens, b.Len)
				if b.Pos != pos || b.CRC != 0 {
					t.Errorf("block %+v: want position %d and no CRC yet", b, pos)
				}
				pos += int64(b.Len)
			}
			if !slices.Equal(lens, tc.want) {
				t.Fatalf("blocks of %v bytes, want %v", lens, tc.want)
			}
			if plan.Footer.Pos != pos || plan.Size != pos+int64(len(lens))*40+4+32 {
				t.Errorf("footer at %d, size %d: not right after %d bytes of batches", plan.Footer.Pos, plan.Size, pos)
			}
			if b := plan.Blocks[0]; b.MaxTimestamp != 100 || b.FirstOffset != 0 {
				t.Errorf("first block %+v: want the max of its spans' timestamps and its first offset", b)
			}
		})
	}
}

func TestPlanPartSegmentInvalid(t *testing.T) {
	t.Parallel()
	ok := Span{Len: 100, FirstOffset: 10, LastOffset: 12}
	for name, spans := range map[string][]Span{
		"none":                   nil,
		"shorter than a batch":   {{Len: 60, FirstOffset: 0, LastOffset: 0}},
		"negative offset":        {{Len: 100, FirstOffset: -1, LastOffset: 0}},
		"last before first":      {{Len: 100, FirstOffset: 5, LastOffset: 4}},
		"overlapping":            {ok, {Len: 100, FirstOffset: 12, LastOffset: 20}},
		"out of order":           {ok, {Len: 100, FirstOffset: 0, LastOffset: 1}},
		"negative length":        {{Len: -100, FirstOffset: 0, LastOffset: 0}},
		"second one not ordered": {ok, ok},
	} {
		if plan, err := PlanPartSegment(testTopic, 0, spans, 0); err == nil {
			t.Errorf("%s: PlanPartSegment = %+v, want an error", name, plan)
		}
	}
}

// TestPartSegmentLayout pins the byte layout of docs/INTERNALS.md, independently of the decoders.
func TestPartSegmentLayout(t *testing.T) {
	t.Parallel()
	run := newTestRun(40, 3, 1, 0, 10) // batches of 61, 62 and 63 bytes at offsets 40, 52, 64
	obj, _ := buildTestSegment(t, run, 123)
	be := binary.BigEndian
	crc := func(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }
	const batches, footer = 52, 52 + 61 + 62 + 63
	if want := footer + 2*40 + 4 + 32; len(obj) != want {
		t.Fatalf("len = %d, want %d", len(obj), want)
	}
	row := func(i, field int) []byte { return obj[footer+40*i+field:] }
	trailer := obj[len(obj)-32:]
	for _, c := range []struct {
		name      string
		got, want uint64
	}{
		{"version", uint64(be.Uint16(obj[8:])), 1},
		{"flags", uint64(be.Uint16(obj[10:])), 0},
		{"partition", uint64(be.Uint32(obj[28:])), 3},
		{"base offset", be.Uint64(obj[32:]), 40},
		{"last offset", be.Uint64(obj[40:]), 65},
		{"header crc", uint64(be.Uint32(obj[48:])), uint64(crc(obj[:48]))},
		{"block 0 first", be.Uint64(row(0, 0)), 40},
		{"block 0 last", be.Uint64(row(0, 8)), 53},
		{"block 0 pos", be.Uint64(row(0, 16)), batches},
		{"block 0 len", uint64(be.Uint32(row(0, 24))), 123},
		{"block 0 crc", uint64(be.Uint32(row(0, 28))), uint64(crc(obj[batches : batches+123]))},
		{"block 0 max timestamp", be.Uint64(row(0, 32)), 1_052},
		{"block 1 first", be.Uint64(row(1, 0)), 64},
		{"block 1 pos", be.Uint64(row(1, 16)), batches + 123},
		{"block 1 len", uint64(be.Uint32(row(1, 24))), 63},
		{"footer crc", uint64(be.Uint32(obj[footer+80:])), uint64(crc(obj[footer : footer+80]))},
		{"trailer footer pos", be.Uint64(trailer[0:]), footer},
		{"trailer footer len", uint64(be.Uint32(trailer[8:])), 84},
		{"trailer footer crc", uint64(be.Uint32(trailer[12:])), uint64(crc(obj[footer : footer+80]))},
		{"trailer block count", uint64(be.Uint32(trailer[16:])), 2},
		{"trailer crc", uint64(be.Uint32(trailer[20:])), uint64(crc(trailer[:20]))},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	if string(obj[:8]) != "SHPRT\x00\x00\x01" || string(trailer[24:]) != "SHPRTEND" || !bytes.Equal(obj[12:28], testTopic[:]) {
		t.Errorf("magic, end magic or topic id misplaced")
	}
	if !bytes.Equal(obj[batches:footer], run.bytes()) {
		t.Errorf("batches misplaced")
	}
}

// TestBuildPartSegmentMismatch: bytes that are not the planned batches build nothing.
func TestBuildPartSegmentMismatch(t *testing.T) {
	t.Parallel()
	run := newTestRun(0, 6, 1, 40, 0) // batches of 101 or so bytes
	plan, err := PlanPartSegment(testTopic, 3, run.spans, 250)
	if err != nil {
		t.Fatal(err)
	}
	other := newTestRun(1, 6, 1, 40, 0)
	bigger := slices.Clone(run.batches)
	bigger[2] = testBatch(run.spans[2].FirstOffset, 1, 0, 200)
	for name, data := range map[string][][]byte{
		"missing batch":        run.batches[:5],
		"extra batch":          append(slices.Clone(run.batches), testBatch(100, 0, 0, 0)),
		"other offsets":        other.batches,
		"a batch longer":       bigger,
		"a slice cuts a batch": {run.bytes()[:150], run.bytes()[150:]},
		"bad magic":            slices.Concat(run.batches[:1], [][]byte{flip(run.batches[1], 16, 1)}, run.batches[2:]),
		"nothing":              nil,
	} {
		if parts, seg, err := BuildPartSegment(plan, data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: BuildPartSegment = %d parts, %+v, %v; want ErrCorrupt", name, len(parts), seg, err)
		}
	}
	// Any grouping of whole batches into slices will do.
	parts, seg, err := BuildPartSegment(plan, [][]byte{run.bytes()[:0], slices.Concat(run.batches[:3]...), slices.Concat(run.batches[3:]...)})
	if err != nil {
		t.Fatal(err)
	}
	if _, want := buildTestSegment(t, run, 250); !equalSegments(seg, want) || len(parts) != 5 {
		t.Fatalf("the same batches in other slices built %+v, want %+v", seg, want)
	}
	bad := *plan
	bad.Blocks = slices.Clone(plan.Blocks)
	bad.Blocks[1].Pos++
	if _, _, err := BuildPartSegment(&bad, run.batches); err == nil {
		t.Error("BuildPartSegment of an inconsistent plan succeeded")
	}
}

func flip(b []byte, i int, mask byte) []byte {
	b = slices.Clone(b)
	b[i] ^= mask
	return b
}

// The parts are the header, the caller's own slices and the tail: no batch is copied.
func TestBuildPartSegmentParts(t *testing.T) {
	t.Parallel()
	run := newTestRun(0, 5, 0, 1_000, 0)
	plan, _ := PlanPartSegment(testTopic, 0, run.spans, 0)
	parts, _, err := BuildPartSegment(plan, run.batches)
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) != len(run.batches)+2 || len(parts[0]) != PartHeaderLen {
		t.Fatalf("%d parts, the first of %d bytes", len(parts), len(parts[0]))
	}
	for i, b := range run.batches {
		if &parts[i+1][0] != &b[0] {
			t.Errorf("part %d is a copy of batch %d", i+1, i)
		}
	}
}
