package segstore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// unseekable hides a reader's Seek: a stream from GETs, as a merge has.
type unseekable struct{ io.Reader }

// testBytes returns n bytes that differ from one position to the next.
func testBytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// testPutReader is the streamed-put part of the store contract: the object is what the reader held,
// whatever the reader's read sizes and whether it can seek.
func testPutReader(t *testing.T, s Store) {
	ctx := context.Background()
	big := testBytes(3<<20 + 17)
	for _, tc := range []struct {
		name string
		data []byte
		r    func(b []byte) io.Reader
	}{
		{"unseekable", big, func(b []byte) io.Reader { return unseekable{bytes.NewReader(b)} }},
		{"seekable", big[:100_000], func(b []byte) io.Reader { return bytes.NewReader(b) }},
		{"small reads", big[:70_000], func(b []byte) io.Reader { return iotest.HalfReader(unseekable{bytes.NewReader(b)}) }},
		{"data with EOF", big[:5_000], func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
		{"empty", nil, func([]byte) io.Reader { return unseekable{strings.NewReader("")} }},
	} {
		key := "part/stream/" + strings.ReplaceAll(tc.name, " ", "-")
		if err := s.PutReader(ctx, key, int64(len(tc.data)), tc.r(tc.data)); err != nil {
			t.Fatalf("%s: PutReader: %v", tc.name, err)
		}
		if got, err := s.Get(ctx, key); err != nil || !bytes.Equal(got, tc.data) {
			t.Fatalf("%s: Get = %d bytes, %v; want the reader's %d", tc.name, len(got), err, len(tc.data))
		}
		if err := s.PutReader(ctx, key, 3, strings.NewReader("new")); !errors.Is(err, ErrExists) {
			t.Fatalf("%s: PutReader over it = %v, want ErrExists", tc.name, err)
		}
		if err := s.Put(ctx, key, []byte("new")); !errors.Is(err, ErrExists) {
			t.Fatalf("%s: Put over it = %v, want ErrExists", tc.name, err)
		}
	}
	if got, err := s.Get(ctx, "part/stream/unseekable"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a refused put changed the object: %d bytes, %v", len(got), err)
	}
	if objects, err := s.ListObjects(ctx, "part/stream/unseekable"); err != nil || len(objects) != 1 || objects[0].Size != int64(len(big)) {
		t.Fatalf("ListObjects = %v, %v; want one object of %d bytes", objects, err, len(big))
	}
}

// testPutReaderRefused: a reader that is not exactly the object's size, or fails, stores nothing.
func testPutReaderRefused(t *testing.T, s Store) {
	ctx := context.Background()
	data := testBytes(200_000)
	boom := errors.New("source GET failed")
	for _, tc := range []struct {
		name string
		size int64
		r    io.Reader
		want error // nil: any error
	}{
		{"short", int64(len(data)) + 1, unseekable{bytes.NewReader(data)}, io.ErrUnexpectedEOF},
		{"short seekable", int64(len(data)) + 1, bytes.NewReader(data), io.ErrUnexpectedEOF},
		{"empty but not zero", 10, unseekable{strings.NewReader("")}, io.ErrUnexpectedEOF},
		{"long", int64(len(data)) - 1, unseekable{bytes.NewReader(data)}, nil},
		{"long seekable", int64(len(data)) - 1, bytes.NewReader(data), nil},
		{"long by far", 10, unseekable{bytes.NewReader(data)}, nil},
		{"zero but not empty", 0, unseekable{strings.NewReader("x")}, nil},
		{"failing", int64(len(data)), unseekable{io.MultiReader(bytes.NewReader(data[:100_000]), iotest.ErrReader(boom))}, boom},
		{"failing at the end", int64(len(data)), unseekable{io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom))}, boom},
	} {
		key := "part/refused/" + strings.ReplaceAll(tc.name, " ", "-")
		err := s.PutReader(ctx, key, tc.size, tc.r)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || errors.Is(err, ErrExists) {
			t.Errorf("%s: PutReader = %v, want an error (%v)", tc.name, err, tc.want)
		}
		if _, err := s.Get(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: Get after the refused put = %v, want ErrNotFound", tc.name, err)
		}
	}
	for _, size := range []int64{-1} {
		if err := s.PutReader(ctx, "part/refused/negative", size, strings.NewReader("")); err == nil {
			t.Errorf("PutReader of size %d succeeded", size)
		}
	}
	if err := s.PutReader(ctx, "a//b", 1, strings.NewReader("x")); err == nil || errors.Is(err, ErrExists) {
		t.Errorf("PutReader with an invalid key = %v, want an invalid-key error", err)
	}
	if objects, err := s.ListObjects(ctx, ""); err != nil || len(objects) != 0 {
		t.Errorf("refused puts left %v (%v)", objects, err)
	}
}
