package segstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"sync/atomic"
	"testing"
)

// mergeSources stores three adjacent segments of one partition (offset gaps between and inside
// them, blocked differently) and returns the store, their keys, runs and footers as a reader without
// an index finds them: from each object's last bytes.
func mergeSources(t *testing.T) (*Faulty, []string, []testRun, [][]Block) {
	t.Helper()
	ctx := context.Background()
	store := NewFaulty(NewMemory())
	runs := []testRun{newTestRun(0, 10, 3, 80, 0), newTestRun(100, 7, 0, 300, 2), newTestRun(1_000, 4, 9, 3_000, 50)}
	var keys []string
	var footers [][]Block
	for i, run := range runs {
		obj, _ := buildTestSegment(t, run, []int{400, 1, 0}[i])
		key := NewPartKey(testTopic, 3, "test")
		mustPut(t, store, key, obj)
		size := int64(len(obj))
		tail, err := store.GetRange(ctx, key, size-PartTrailerLen, PartTrailerLen)
		if err != nil {
			t.Fatal(err)
		}
		f, err := DecodePartTrailer(tail, size)
		if err != nil {
			t.Fatal(err)
		}
		footer, err := store.GetRange(ctx, key, f.Pos, int64(f.Len))
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := DecodePartFooter(footer, f)
		if err != nil {
			t.Fatal(err)
		}
		keys, footers = append(keys, key), append(footers, blocks)
	}
	return store, keys, runs, footers
}

func TestPartMerge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, keys, runs, footers := mergeSources(t)
	var gets atomic.Int32
	store.SetFault(OpGetRange, func(string) error { gets.Add(1); return nil })
	for _, tc := range []struct {
		name   string
		target int // of the merge's blocks
		blocks int
		chunk  int64 // of its GETs
		gets   int32
	}{
		// The sources have 5 blocks of about 285 bytes, 7 of about 362, and one of about 12 KB.
		{"default chunk", 1, 13, 0, 3},                // a GET per source
		{"block by block", 1, 13, 1, 5 + 7 + 1},       // each block alone
		{"a few blocks a GET", 1, 13, 900, 2 + 4 + 1}, // 3, 2 and 1 (larger than the chunk) blocks a GET
		{"blocks joined", 0, 1, 0, 3},                 // 16 KB in all: one block
		{"blocks joined across sources", 1_000, 6, 0, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := PlanPartMerge(testTopic, 3, footers, tc.target)
			if err != nil {
				t.Fatal(err)
			}
			r, err := m.NewReader(ctx, store, keys, tc.chunk)
			if err != nil {
				t.Fatal(err)
			}
			gets.Store(0)
			key := NewPartKey(testTopic, 3, "merger")
			if err := store.PutReader(ctx, key, m.Segment.Size, r); err != nil {
				t.Fatalf("PutReader of the merge: %v", err)
			}
			if n := gets.Load(); n != tc.gets {
				t.Errorf("%d GETs of the sources, want %d", n, tc.gets)
			}
			obj, err := store.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Segment.Blocks) != tc.blocks {
				t.Errorf("%d blocks, want %d", len(m.Segment.Blocks), tc.blocks)
			}
			checkMerged(t, obj, m, runs, footers, tc.target)
		})
	}
}

// checkMerged checks a merged object: valid (every block's CRC and batches), described by its plan,
// its batches the sources' in order, its blocks theirs joined up to target bytes.
func checkMerged(t *testing.T, obj []byte, m *PartMerge, runs []testRun, footers [][]Block, target int) {
	t.Helper()
	seg, err := DecodePartSegment(obj)
	if err != nil {
		t.Fatalf("DecodePartSegment of the merge: %v", err)
	}
	if !equalSegments(seg, &m.Segment) {
		t.Fatalf("merged object %+v, its plan %+v", seg, m.Segment)
	}
	var batches []byte
	var lens []int32 // of the sources' blocks
	for i, run := range runs {
		batches = append(batches, run.bytes()...)
		for _, b := range footers[i] {
			lens = append(lens, b.Len)
		}
		if m.Regions[i] != (Range{Pos: PartHeaderLen, Len: int64(len(run.bytes()))}) {
			t.Errorf("source %d's region %+v, want its %d bytes of batches", i, m.Regions[i], len(run.bytes()))
		}
	}
	if !bytes.Equal(obj[PartHeaderLen:seg.Footer.Pos], batches) {
		t.Error("the merge's batches are not the sources', in order")
	}
	if seg.BaseOffset != 0 || seg.LastOffset != runs[2].spans[3].LastOffset {
		t.Errorf("merged offsets [%d, %d]", seg.BaseOffset, seg.LastOffset)
	}
	// Each block is the next source blocks that fit in target together, and no more.
	for i, b := range seg.Blocks {
		n, size := 1, lens[0]
		for n < len(lens) && int64(size)+int64(lens[n]) <= blockLimit(target) {
			size, n = size+lens[n], n+1
		}
		if b.Len != size {
			t.Fatalf("block %d of %d bytes, want the next %d source blocks' %d", i, b.Len, n, size)
		}
		lens = lens[n:]
	}
}

// TestPartMergeCorruptSource: a source block that fails its CRC fails the merge; nothing is stored.
func TestPartMergeCorruptSource(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, keys, _, footers := mergeSources(t)
	obj, err := store.Get(ctx, keys[1])
	if err != nil {
		t.Fatal(err)
	}
	bad := NewPartKey(testTopic, 3, "corrupt")
	mustPut(t, store, bad, flip(obj, int(footers[1][2].Pos)+70, 1))
	m, err := PlanPartMerge(testTopic, 3, footers, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, srcs := range map[string][]string{
		"corrupt": {keys[0], bad, keys[2]},
		"missing": {keys[0], "part/gone", keys[2]},
	} {
		r, err := m.NewReader(ctx, store, srcs, 0)
		if err != nil {
			t.Fatal(err)
		}
		key := NewPartKey(testTopic, 3, "merger")
		err = store.PutReader(ctx, key, m.Segment.Size, r)
		if want := map[string]error{"corrupt": ErrCorrupt, "missing": ErrNotFound}[name]; !errors.Is(err, want) {
			t.Errorf("%s source: PutReader = %v, want %v", name, err, want)
		}
		if _, err := store.Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s source: the failed merge left an object: %v", name, err)
		}
	}
}

func TestPlanPartMergeInvalid(t *testing.T) {
	t.Parallel()
	_, _, _, footers := mergeSources(t)
	moved := slices.Clone(footers[1])
	moved[1].Pos++
	for name, srcs := range map[string][][]Block{
		"none":            nil,
		"an empty source": {footers[0], nil},
		"out of order":    {footers[1], footers[0]},
		"overlapping":     {footers[0], footers[0]},
		"not contiguous":  {footers[0], moved},
	} {
		if m, err := PlanPartMerge(testTopic, 3, srcs, 0); err == nil {
			t.Errorf("%s: PlanPartMerge = %+v, want an error", name, m.Segment)
		}
	}
	m, err := PlanPartMerge(testTopic, 3, footers, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.NewReader(context.Background(), NewMemory(), []string{"a", "b"}, 0); err == nil {
		t.Error("NewReader with 2 keys for 3 sources succeeded")
	}
}

// BenchmarkPartMerge reads a merge of eight 4 MiB segments from a memory store: the merge's own
// cost per byte (its GETs, each block's check, the copy out), without a store to write to.
func BenchmarkPartMerge(b *testing.B) {
	ctx := context.Background()
	store := NewMemory()
	var keys []string
	var footers [][]Block
	for i := range 8 {
		run := newTestRun(int64(i)*10_000, 256, 15, 16<<10, 0)
		obj, seg := buildTestSegment(b, run, 0)
		keys = append(keys, NewPartKey(testTopic, 0, "bench"))
		mustPut(b, store, keys[i], obj)
		footers = append(footers, seg.Blocks)
	}
	m, err := PlanPartMerge(testTopic, 0, footers, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(m.Segment.Size)
	b.ReportAllocs()
	for b.Loop() {
		r, err := m.NewReader(ctx, store, keys, 0)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, r); err != nil || n != m.Segment.Size {
			b.Fatalf("read %d bytes of %d: %v", n, m.Segment.Size, err)
		}
	}
}
