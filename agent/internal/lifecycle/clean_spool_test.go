package lifecycle

import (
	"os"
	"testing"
)

// A clean's spool file is unlinked from the start, so an agent killed mid-clean leaves no file in the
// temporary directory, while the spool itself still reads back what was written.
func TestSpoolLeavesNoFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	s, err := newSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if _, err := s.w.WriteString("batch bytes"); err != nil {
		t.Fatal(err)
	}
	if err := s.w.Flush(); err != nil {
		t.Fatal(err)
	}
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 0 {
		t.Fatalf("the spool left %d files in the temporary directory: %v", len(left), left[0].Name())
	}
	buf := make([]byte, len("batch bytes"))
	if _, err := s.f.ReadAt(buf, 0); err != nil || string(buf) != "batch bytes" {
		t.Fatalf("read back %q, %v", buf, err)
	}
}
