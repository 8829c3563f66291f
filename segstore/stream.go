package segstore

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// exactReader passes on the body of a streamed put, which must be exactly size bytes, and fails
// the put otherwise in a way no store can mistake for a complete body: the bytes that complete the
// size are withheld until the reader is known to end there, so a store that counts bytes (an HTTP
// server reading Content-Length) never sees a whole object from a reader that holds more. Its first
// failure is kept (failure) and returned by every later Read: the S3 client's own error for an
// aborted body says less than the reader's.
type exactReader struct {
	ctx   context.Context
	r     io.Reader
	size  int64
	left  int64
	ended bool  // r was found to end after size bytes
	err   error // the first failure
}

func newExactReader(ctx context.Context, r io.Reader, size int64) *exactReader {
	return &exactReader{ctx: ctx, r: r, size: size, left: size}
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, e.atEnd()
	}
	if err := e.ctx.Err(); err != nil {
		return 0, e.fail(err)
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0:
		if err := e.atEnd(); err != io.EOF {
			return 0, err
		}
		return n, nil
	case err == io.EOF:
		return 0, e.fail(fmt.Errorf("%w: the reader ended %d bytes short of the object's %d", io.ErrUnexpectedEOF, e.left, e.size))
	case err != nil:
		return 0, e.fail(fmt.Errorf("reading the object: %w", err))
	}
	return n, nil
}

// atEnd checks once that r holds nothing past size, and returns io.EOF if so.
func (e *exactReader) atEnd() error {
	if !e.ended {
		var one [1]byte
		n, err := io.ReadAtLeast(e.r, one[:], 1)
		switch {
		case n > 0:
			return e.fail(fmt.Errorf("segstore: the reader holds more than the object's %d bytes", e.size))
		case !errors.Is(err, io.EOF):
			return e.fail(fmt.Errorf("reading the object: %w", err))
		}
		e.ended = true
	}
	return io.EOF
}

func (e *exactReader) fail(err error) error {
	e.err = err
	return err
}

// failure is the reader's first failure, nil if none.
func (e *exactReader) failure() error { return e.err }

// exactReadSeeker is an exactReader over an io.ReadSeeker, which the S3 client can rewind to hash
// the body or to retry. Positions are relative to where r was when wrapped.
type exactReadSeeker struct {
	*exactReader
	s     io.Seeker
	start int64
}

// newExactReadSeeker wraps r if it can seek (an *os.File on a pipe cannot, though it has Seek).
func newExactReadSeeker(ctx context.Context, r io.Reader, size int64) (*exactReadSeeker, bool) {
	s, ok := r.(io.Seeker)
	if !ok {
		return nil, false
	}
	start, err := s.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, false
	}
	return &exactReadSeeker{exactReader: newExactReader(ctx, r, size), s: s, start: start}, true
}

func (e *exactReadSeeker) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		offset += e.size - e.left
	case io.SeekEnd:
		offset += e.size
	}
	if offset < 0 || offset > e.size {
		return e.size - e.left, fmt.Errorf("segstore: seek to %d of a %d-byte object", offset, e.size)
	}
	if _, err := e.s.Seek(e.start+offset, io.SeekStart); err != nil {
		return e.size - e.left, err
	}
	e.left, e.ended, e.err = e.size-offset, false, nil
	return offset, nil
}
