package lifecycle

import (
	"bufio"
	"bytes"
	"fmt"
	"hash/crc32"
	"io"
	"os"

	"github.com/streamhouse/streamhouse/segstore"
)

// spool holds a cleaned segment's batches in a temporary file while a clean writes them, so that the
// clean's memory does not follow the segment's size (up to segment.bytes): the object is then the
// header, the file, and the footer, streamed to the store with PutReader.
type spool struct {
	f     *os.File
	w     *bufio.Writer
	n     int64
	spans []segstore.Span
}

func newSpool() (*spool, error) {
	f, err := os.CreateTemp("", "streamhouse-clean-*")
	if err != nil {
		return nil, fmt.Errorf("lifecycle: clean: %w", err)
	}
	// Unlinked at once: the open file keeps its bytes until close, and a process killed mid-clean
	// leaves nothing behind in the temporary directory.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("lifecycle: clean: %w", err)
	}
	return &spool{f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// add appends one batch.
func (s *spool) add(batch []byte) error {
	span, err := extentSpan(batch)
	if err != nil {
		return err
	}
	if _, err := s.w.Write(batch); err != nil {
		return fmt.Errorf("lifecycle: clean: %w", err)
	}
	s.n += int64(len(batch))
	s.spans = append(s.spans, span)
	return nil
}

// object returns the segment plan describes as a reader of its bytes, the block CRCs computed by
// reading the file back one block at a time.
func (s *spool) object(plan *segstore.PartSegment) (io.Reader, *segstore.PartSegment, error) {
	if err := s.w.Flush(); err != nil {
		return nil, nil, fmt.Errorf("lifecycle: clean: %w", err)
	}
	crcs := make([]uint32, len(plan.Blocks))
	var buf []byte
	for i, b := range plan.Blocks {
		if cap(buf) < int(b.Len) {
			buf = make([]byte, b.Len)
		}
		buf = buf[:b.Len]
		if _, err := s.f.ReadAt(buf, b.Pos-segstore.PartHeaderLen); err != nil {
			return nil, nil, fmt.Errorf("lifecycle: clean: %w", err)
		}
		crcs[i] = crc32.Checksum(buf, castagnoli)
	}
	head, tail, seg, err := segstore.FinishPartSegment(plan, crcs)
	if err != nil {
		return nil, nil, err
	}
	return io.MultiReader(bytes.NewReader(head), io.NewSectionReader(s.f, 0, s.n), bytes.NewReader(tail)), seg, nil
}

// close releases the file (unlinked since newSpool, so its bytes go with it).
func (s *spool) close() {
	s.f.Close()
}
