package segstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"testing"
)

// Helpers that edit an encoded partition segment and recompute the CRCs above the edit, so that the
// check under test, not a CRC, is what rejects the object.

func partFooterAt(obj []byte) (pos, n int) {
	t := obj[len(obj)-PartTrailerLen:]
	return int(binary.BigEndian.Uint64(t)), int(binary.BigEndian.Uint32(t[8:]))
}

func resealPartHeader(obj []byte) {
	binary.BigEndian.PutUint32(obj[48:], crc32.Checksum(obj[:48], castagnoli))
}

func resealPartTrailer(obj []byte) {
	t := obj[len(obj)-PartTrailerLen:]
	binary.BigEndian.PutUint32(t[20:], crc32.Checksum(t[:20], castagnoli))
}

// resealPartFooter recomputes the footer's CRC (stored in the footer and the trailer).
func resealPartFooter(obj []byte) {
	pos, n := partFooterAt(obj)
	crc := crc32.Checksum(obj[pos:pos+n-4], castagnoli)
	binary.BigEndian.PutUint32(obj[pos+n-4:], crc)
	binary.BigEndian.PutUint32(obj[len(obj)-PartTrailerLen+12:], crc)
	resealPartTrailer(obj)
}

// resealPartBlock recomputes block i's CRC in its footer row, then the footer's.
func resealPartBlock(obj []byte, i int) {
	pos, _ := partFooterAt(obj)
	row := obj[pos+i*partRowLen:]
	at, n := binary.BigEndian.Uint64(row[16:]), binary.BigEndian.Uint32(row[24:])
	binary.BigEndian.PutUint32(row[28:], crc32.Checksum(obj[at:at+uint64(n)], castagnoli))
	resealPartFooter(obj)
}

// validPartSegment is a segment of 12 batches (offsets 100 on, with gaps) in blocks of 3 batches.
func validPartSegment(t testing.TB) []byte {
	obj, seg := buildTestSegment(t, newTestRun(100, 12, 2, 60, 3), 400)
	if len(seg.Blocks) != 4 {
		t.Fatalf("%d blocks, want 4", len(seg.Blocks))
	}
	return obj
}

func TestDecodePartSegmentCorrupt(t *testing.T) {
	t.Parallel()
	be := binary.BigEndian
	row := func(o []byte, i, field int) []byte { pos, _ := partFooterAt(o); return o[pos+i*partRowLen+field:] }
	trailer := func(o []byte) []byte { return o[len(o)-PartTrailerLen:] }
	for _, tc := range []struct {
		name   string
		mutate func(o []byte) []byte
	}{
		{"empty", func([]byte) []byte { return nil }},
		{"header only", func(o []byte) []byte { return o[:PartHeaderLen] }},
		{"truncated", func(o []byte) []byte { return o[:len(o)-1] }},
		{"trailing byte", func(o []byte) []byte { return append(o, 0) }},
		{"leading byte", func(o []byte) []byte { return append([]byte{0}, o...) }},
		{"bad magic", func(o []byte) []byte { o[2] = 'X'; resealPartHeader(o); return o }},
		{"header bit flip", func(o []byte) []byte { o[30] ^= 1; return o }},
		{"header crc flip", func(o []byte) []byte { o[50] ^= 1; return o }},
		{"version 2", func(o []byte) []byte { be.PutUint16(o[8:], 2); resealPartHeader(o); return o }},
		{"flags set", func(o []byte) []byte { be.PutUint16(o[10:], 1); resealPartHeader(o); return o }},
		{"base offset off", func(o []byte) []byte { be.PutUint64(o[32:], 99); resealPartHeader(o); return o }},
		{"last offset off", func(o []byte) []byte { be.PutUint64(o[40:], be.Uint64(o[40:])+1); resealPartHeader(o); return o }},
		{"negative base", func(o []byte) []byte { be.PutUint64(o[32:], ^uint64(0)); resealPartHeader(o); return o }},
		{"base after last", func(o []byte) []byte { be.PutUint64(o[32:], 1<<40); resealPartHeader(o); return o }},
		{"end magic", func(o []byte) []byte { o[len(o)-1] = 'X'; return o }},
		{"trailer crc flip", func(o []byte) []byte { trailer(o)[22] ^= 1; return o }},
		{"trailer bit flip", func(o []byte) []byte { trailer(o)[3] ^= 1; return o }},
		{"footer pos +40", func(o []byte) []byte {
			be.PutUint64(trailer(o), be.Uint64(trailer(o))+40)
			be.PutUint32(trailer(o)[8:], be.Uint32(trailer(o)[8:])-40)
			be.PutUint32(trailer(o)[16:], 3)
			resealPartTrailer(o)
			return o
		}},
		{"footer len off", func(o []byte) []byte { be.PutUint32(trailer(o)[8:], 40*4+5); resealPartTrailer(o); return o }},
		{"no blocks", func(o []byte) []byte { be.PutUint32(trailer(o)[16:], 0); resealPartTrailer(o); return o }},
		{"block count off", func(o []byte) []byte { be.PutUint32(trailer(o)[16:], 3); resealPartTrailer(o); return o }},
		{"footer past end", func(o []byte) []byte { be.PutUint64(trailer(o), 1<<62); resealPartTrailer(o); return o }},
		{"footer in header", func(o []byte) []byte { be.PutUint64(trailer(o), 8); resealPartTrailer(o); return o }},
		{"trailer's footer crc", func(o []byte) []byte { trailer(o)[13] ^= 1; resealPartTrailer(o); return o }},
		{"footer bit flip", func(o []byte) []byte { row(o, 1, 3)[0] ^= 1; return o }},
		{"footer's own crc", func(o []byte) []byte { row(o, 4, 0)[1] ^= 1; return o }},
		{"block moved", func(o []byte) []byte {
			be.PutUint64(row(o, 1, 16), be.Uint64(row(o, 1, 16))+1)
			resealPartFooter(o)
			return o
		}},
		{"block shortened", func(o []byte) []byte {
			be.PutUint32(row(o, 3, 24), be.Uint32(row(o, 3, 24))-1)
			resealPartFooter(o)
			return o
		}},
		{"block over int32", func(o []byte) []byte { be.PutUint32(row(o, 3, 24), 0x80000000); resealPartFooter(o); return o }},
		{"block crc", func(o []byte) []byte { row(o, 2, 28)[0] ^= 1; resealPartFooter(o); return o }},
		{"block first offset", func(o []byte) []byte {
			be.PutUint64(row(o, 2, 0), be.Uint64(row(o, 2, 0))+1)
			resealPartFooter(o)
			return o
		}},
		{"block last offset", func(o []byte) []byte {
			be.PutUint64(row(o, 2, 8), be.Uint64(row(o, 2, 8))-1)
			resealPartFooter(o)
			return o
		}},
		{"blocks overlap", func(o []byte) []byte {
			be.PutUint64(row(o, 2, 0), be.Uint64(row(o, 1, 8)))
			resealPartFooter(o)
			return o
		}},
		{"rows swapped", func(o []byte) []byte {
			r0 := slices.Clone(row(o, 0, 0)[:partRowLen])
			copy(row(o, 0, 0), row(o, 1, 0)[:partRowLen])
			copy(row(o, 1, 0), r0)
			resealPartFooter(o)
			return o
		}},
		{"batch byte flip", func(o []byte) []byte { o[PartHeaderLen+100] ^= 1; return o }},
		{"batch magic", func(o []byte) []byte { o[PartHeaderLen+16] = 1; resealPartBlock(o, 0); return o }},
		{"batch length", func(o []byte) []byte { o[PartHeaderLen+11]++; resealPartBlock(o, 0); return o }},
		{"batch offsets go back", func(o []byte) []byte {
			second := PartHeaderLen + int(be.Uint32(o[PartHeaderLen+8:])) + batchLogHeader
			be.PutUint64(o[second:], 100)
			resealPartBlock(o, 0)
			return o
		}},
		{"batch delta negative", func(o []byte) []byte { be.PutUint32(o[PartHeaderLen+23:], ^uint32(0)); resealPartBlock(o, 0); return o }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.mutate(validPartSegment(t))
			seg, err := DecodePartSegment(obj)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodePartSegment = %+v, %v; want ErrCorrupt", seg, err)
			}
			t.Log(err)
		})
	}
}

func TestDecodePartFooterChecksRef(t *testing.T) {
	t.Parallel()
	obj := validPartSegment(t)
	f, err := DecodePartTrailer(obj, int64(len(obj)))
	if err != nil {
		t.Fatal(err)
	}
	footer := obj[f.Pos : f.Pos+int64(f.Len)]
	for name, ref := range map[string]PartFooter{
		"other crc":      {Pos: f.Pos, Len: f.Len, CRC: f.CRC ^ 1},
		"other position": {Pos: f.Pos + 1, Len: f.Len, CRC: f.CRC},
		"other length":   {Pos: f.Pos, Len: f.Len + 40, CRC: f.CRC},
	} {
		if _, err := DecodePartFooter(footer, ref); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: DecodePartFooter = %v, want ErrCorrupt", name, err)
		}
	}
	if _, err := DecodePartTrailer(obj, int64(len(obj))+1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("DecodePartTrailer with the wrong object size = %v, want ErrCorrupt", err)
	}
}

// checkReencodes fails unless seg (decoded from obj) encodes back to obj, by the builder's encoders
// and by a one-source merge plan.
func checkReencodes(t *testing.T, obj []byte, seg *PartSegment) {
	t.Helper()
	head := appendPartHeader(nil, &seg.PartHeader)
	tail, f := appendPartTail(nil, seg.Blocks, seg.Footer.Pos)
	if again := slices.Concat(head, obj[PartHeaderLen:seg.Footer.Pos], tail); !bytes.Equal(again, obj) || f != seg.Footer {
		t.Fatalf("accepted object does not re-encode to itself:\n got %x\nwant %x", again, obj)
	}
	m, err := PlanPartMerge(seg.TopicID, seg.Partition, [][]Block{seg.Blocks}, 1)
	if err != nil {
		t.Fatalf("PlanPartMerge of an accepted segment: %v", err)
	}
	if !bytes.Equal(m.Head, head) || !bytes.Equal(m.Tail, tail) || !equalSegments(&m.Segment, seg) {
		t.Fatal("a merge of one accepted segment is not that segment")
	}
}

func partSeeds() [][]byte {
	var seeds [][]byte
	for _, run := range []testRun{newTestRun(0, 1, 0, 0, 0), newTestRun(5, 4, 1, 20, 2), newTestRun(100, 12, 2, 60, 3)} {
		plan, _ := PlanPartSegment(testTopic, 1, run.spans, 200)
		ps, _, _ := BuildPartSegment(plan, run.batches)
		obj := parts(ps).concat()
		seeds = append(seeds, obj)
		for _, i := range []int{0, 9, 33, 49, PartHeaderLen + 9, PartHeaderLen + 16, PartHeaderLen + 24, len(obj) - 40, len(obj) - 30, len(obj) - 20, len(obj) - 1} {
			seeds = append(seeds, flip(obj, i, 0x41))
		}
		for _, cut := range []int{0, PartHeaderLen, len(obj) / 2, len(obj) - 1} {
			seeds = append(seeds, slices.Clone(obj[:cut]))
		}
	}
	return seeds
}

// FuzzDecodePartSegment: DecodePartSegment never panics, and an object it accepts holds up: every
// block passes VerifyBlock and the object re-encodes to the same bytes.
func FuzzDecodePartSegment(f *testing.F) {
	for _, s := range partSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		seg, err := DecodePartSegment(obj)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		for i, b := range seg.Blocks {
			if err := VerifyBlock(obj[b.Pos:b.Pos+int64(b.Len)], b); err != nil {
				t.Fatalf("accepted block %d: %v", i, err)
			}
		}
		checkReencodes(t, obj, seg)
	})
}

// FuzzDecodePartTrailer: an accepted trailer locates a footer that ends where it begins, and
// re-encodes to itself.
func FuzzDecodePartTrailer(f *testing.F) {
	for _, s := range partSeeds() {
		f.Add(s, int64(len(s)))
	}
	f.Fuzz(func(t *testing.T, tail []byte, size int64) {
		fr, err := DecodePartTrailer(tail, size)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if fr.Pos < PartHeaderLen || fr.Len < partRowLen+4 || fr.Pos+int64(fr.Len)+PartTrailerLen != size {
			t.Fatalf("accepted footer %+v in %d bytes", fr, size)
		}
		blocks := make([]Block, (fr.Len-4)/partRowLen)
		enc, _ := appendPartTail(nil, blocks, fr.Pos)
		got := slices.Clone(enc[len(enc)-PartTrailerLen:])
		binary.BigEndian.PutUint32(got[12:], fr.CRC)
		binary.BigEndian.PutUint32(got[20:], crc32.Checksum(got[:20], castagnoli))
		if !bytes.Equal(got, tail[len(tail)-PartTrailerLen:]) {
			t.Fatalf("accepted trailer re-encodes to %x, was %x", got, tail[len(tail)-PartTrailerLen:])
		}
	})
}

// FuzzDecodePartFooter: accepted rows are blocks back to back up to the footer, and re-encode to
// themselves.
func FuzzDecodePartFooter(f *testing.F) {
	for _, s := range partSeeds() {
		if fr, err := DecodePartTrailer(s, int64(len(s))); err == nil {
			f.Add(s[fr.Pos:fr.Pos+int64(fr.Len)], fr.Pos, fr.CRC)
		}
	}
	f.Fuzz(func(t *testing.T, footer []byte, pos int64, crc uint32) {
		blocks, err := DecodePartFooter(footer, PartFooter{Pos: pos, Len: int32(len(footer)), CRC: crc})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if end, err := checkBlocks(blocks, -1); err != nil || end != pos {
			t.Fatalf("accepted blocks end at %d (%v), the footer is at %d", end, err, pos)
		}
		enc, fr := appendPartTail(nil, blocks, pos)
		if !bytes.Equal(enc[:len(footer)], footer) || fr.CRC != crc {
			t.Fatalf("accepted footer re-encodes to %x, was %x", enc[:len(footer)], footer)
		}
	})
}

// FuzzDecodePartHeader: an accepted header re-encodes to itself.
func FuzzDecodePartHeader(f *testing.F) {
	for _, s := range partSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodePartHeader(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if again := appendPartHeader(nil, &h); !bytes.Equal(again, b[:PartHeaderLen]) {
			t.Fatalf("accepted header re-encodes to %x, was %x", again, b[:PartHeaderLen])
		}
	})
}

func benchRun() testRun { return newTestRun(0, 256, 15, 16<<10, 0) } // 4 MiB in 16 KiB batches

func BenchmarkBuildPartSegment(b *testing.B) {
	run := benchRun()
	b.SetBytes(int64(len(run.bytes())))
	b.ReportAllocs()
	for b.Loop() {
		plan, err := PlanPartSegment(testTopic, 0, run.spans, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := BuildPartSegment(plan, run.batches); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodePartSegment(b *testing.B) {
	obj, _ := buildTestSegment(b, benchRun(), 0)
	b.SetBytes(int64(len(obj)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodePartSegment(obj); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenPartBlock is a reader's work per block: the footer from an index entry, one block's
// check, and the batches from an offset in its middle.
func BenchmarkOpenPartBlock(b *testing.B) {
	obj, seg := buildTestSegment(b, newTestRun(0, 256, 15, 1<<10, 0), 0)
	footer := obj[seg.Footer.Pos : seg.Footer.Pos+int64(seg.Footer.Len)]
	blk := seg.Blocks[len(seg.Blocks)/2]
	data := obj[blk.Pos : blk.Pos+int64(blk.Len)]
	mid := (blk.FirstOffset + blk.LastOffset) / 2
	b.SetBytes(int64(blk.Len))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodePartFooter(footer, seg.Footer); err != nil {
			b.Fatal(err)
		}
		if err := VerifyBlock(data, blk); err != nil {
			b.Fatal(err)
		}
		if _, err := BatchesFrom(data, mid); err != nil {
			b.Fatal(err)
		}
	}
}
