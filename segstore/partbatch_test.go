package segstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
)

func TestBatchesFrom(t *testing.T) { // not parallel: it counts allocations
	// Batches of offsets [10, 14], [20, 24], [30, 34]: a log cleaner left gaps between them.
	run := newTestRun(10, 3, 4, 30, 5)
	data := run.bytes()
	starts := []int{0, len(run.batches[0]), len(run.batches[0]) + len(run.batches[1]), len(data)}
	for _, tc := range []struct {
		offset int64
		batch  int // the first batch served
	}{
		{0, 0}, {10, 0}, {14, 0}, {15, 1}, {19, 1}, {20, 1}, {24, 1}, {25, 2}, {34, 2}, {35, 3}, {1 << 40, 3},
	} {
		got, err := BatchesFrom(data, tc.offset)
		if err != nil || !bytes.Equal(got, data[starts[tc.batch]:]) {
			t.Errorf("BatchesFrom(%d) = %d bytes, %v; want the %d bytes from batch %d", tc.offset, len(got), err, len(data)-starts[tc.batch], tc.batch)
		}
	}
	if got, err := BatchesFrom(nil, 0); err != nil || len(got) != 0 {
		t.Errorf("BatchesFrom(nil) = %q, %v", got, err)
	}
	allocs := testing.AllocsPerRun(50, func() { _, _ = BatchesFrom(data, 25) })
	if allocs != 0 {
		t.Errorf("BatchesFrom made %.0f allocations, want none", allocs)
	}
}

func TestBatchSpansCorrupt(t *testing.T) {
	t.Parallel()
	be := binary.BigEndian
	run := newTestRun(10, 3, 4, 30, 0)
	second := len(run.batches[0])
	for _, tc := range []struct {
		name   string
		mutate func(d []byte) []byte
	}{
		{"partial header", func(d []byte) []byte { return d[:second+60] }},
		{"partial batch", func(d []byte) []byte { return d[:len(d)-1] }},
		{"trailing byte", func(d []byte) []byte { return append(d, 0) }},
		{"length too small", func(d []byte) []byte { be.PutUint32(d[second+8:], 48); return d }},
		{"length negative", func(d []byte) []byte { be.PutUint32(d[second+8:], 0x80000000); return d }},
		{"length past the end", func(d []byte) []byte { be.PutUint32(d[second+8:], 1<<20); return d }},
		{"magic 1", func(d []byte) []byte { d[second+16] = 1; return d }},
		{"negative base offset", func(d []byte) []byte { be.PutUint64(d[second:], 1<<63); return d }},
		{"negative delta", func(d []byte) []byte { be.PutUint32(d[second+23:], 1<<31); return d }},
		{"last offset overflows", func(d []byte) []byte { be.PutUint64(d[second:], 1<<63-2); return d }},
		{"offset repeats", func(d []byte) []byte { be.PutUint64(d[second:], 14); return d }},
		{"offset goes back", func(d []byte) []byte { be.PutUint64(d[second:], 0); return d }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.mutate(run.bytes())
			if spans, err := BatchSpans(data); !errors.Is(err, ErrCorrupt) {
				t.Errorf("BatchSpans = %v, %v; want ErrCorrupt", spans, err)
			}
			if got, err := BatchesFrom(data, 100); !errors.Is(err, ErrCorrupt) {
				t.Errorf("BatchesFrom = %d bytes, %v; want ErrCorrupt", len(got), err)
			}
		})
	}
	if spans, err := BatchSpans(run.bytes()); err != nil || !slices.Equal(spans, run.spans) {
		t.Fatalf("BatchSpans of the intact run = %v, %v", spans, err)
	}
}

// FuzzBatchSpans: the walk never panics; accepted batches fill the data with increasing offsets,
// and BatchesFrom serves from the first batch that holds the offset or a later one.
func FuzzBatchSpans(f *testing.F) {
	for _, r := range []testRun{newTestRun(0, 1, 0, 0, 0), newTestRun(10, 3, 4, 30, 5)} {
		d := r.bytes()
		f.Add(d, int64(12))
		f.Add(flip(d, 8, 0x10), int64(0))
		f.Add(flip(d, 23, 0x80), int64(5))
		f.Add(d[:len(d)-3], int64(30))
	}
	f.Fuzz(func(t *testing.T, data []byte, offset int64) {
		spans, err := BatchSpans(data)
		from, ferr := BatchesFrom(data, offset)
		if (err == nil) != (ferr == nil) {
			t.Fatalf("BatchSpans says %v, BatchesFrom %v", err, ferr)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || !errors.Is(ferr, ErrCorrupt) {
				t.Fatalf("errors %v, %v do not wrap ErrCorrupt", err, ferr)
			}
			return
		}
		pos, prevLast, want := 0, int64(-1), len(data)
		for _, s := range spans {
			if s.FirstOffset <= prevLast || s.LastOffset < s.FirstOffset || s.Len < batchHeaderLen {
				t.Fatalf("accepted span %+v after offset %d", s, prevLast)
			}
			if want == len(data) && s.LastOffset >= offset {
				want = pos
			}
			pos, prevLast = pos+int(s.Len), s.LastOffset
		}
		if pos != len(data) || len(from) != len(data)-want {
			t.Fatalf("spans cover %d of %d bytes; BatchesFrom(%d) gave %d bytes, want %d", pos, len(data), offset, len(from), len(data)-want)
		}
	})
}
