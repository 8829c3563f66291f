package segstore

import (
	"errors"
	"io"
)

// parts is an object given as the concatenation of byte slices (Writer.Put's arguments): the head of
// a segment object and its chunks' data, sent without first being copied into one buffer.
type parts [][]byte

func (p parts) size() int64 {
	var n int64
	for _, b := range p {
		n += int64(len(b))
	}
	return n
}

// concat returns the object as one new slice.
func (p parts) concat() []byte {
	out := make([]byte, 0, p.size())
	for _, b := range p {
		out = append(out, b...)
	}
	return out
}

// equal reports whether the object is data.
func (p parts) equal(data []byte) bool {
	if p.size() != int64(len(data)) {
		return false
	}
	for _, b := range p {
		if string(b) != string(data[:len(b)]) {
			return false
		}
		data = data[len(b):]
	}
	return true
}

// partsReader reads the concatenation of parts without copying it: an io.ReadSeeker, so that the S3
// SDK can rewind it to retry a request, and an io.WriterTo, so that the HTTP transport writes each
// part to the connection directly.
type partsReader struct {
	p    parts
	size int64
	off  int64 // position in the concatenation
	i    int   // part holding off (len(p) at the end)
	in   int   // offset of off within p[i]
}

func newPartsReader(p parts) *partsReader {
	r := &partsReader{p: p, size: p.size()}
	r.skipEmpty()
	return r
}

// skipEmpty moves past the parts that off has consumed.
func (r *partsReader) skipEmpty() {
	for r.i < len(r.p) && r.in == len(r.p[r.i]) {
		r.i, r.in = r.i+1, 0
	}
}

func (r *partsReader) Read(b []byte) (int, error) {
	if r.i >= len(r.p) {
		return 0, io.EOF
	}
	var n int
	for n < len(b) && r.i < len(r.p) {
		c := copy(b[n:], r.p[r.i][r.in:])
		n, r.in, r.off = n+c, r.in+c, r.off+int64(c)
		r.skipEmpty()
	}
	return n, nil
}

func (r *partsReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for r.i < len(r.p) {
		n, err := w.Write(r.p[r.i][r.in:])
		total, r.in, r.off = total+int64(n), r.in+n, r.off+int64(n)
		r.skipEmpty()
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

var errSeekRange = errors.New("segstore: seek outside the object")

func (r *partsReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 || offset > r.size {
		return r.off, errSeekRange
	}
	r.off, r.i, r.in = offset, 0, 0
	for r.i < len(r.p) && offset >= int64(len(r.p[r.i])) {
		offset -= int64(len(r.p[r.i]))
		r.i++
	}
	r.in = int(offset)
	r.skipEmpty()
	return r.off, nil
}
