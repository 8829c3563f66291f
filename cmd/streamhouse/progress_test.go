package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// produce from a large file and reset-offsets over many partitions show their progress on stderr when
// it is a terminal, and nothing when it is not (a pipe, a log).
func TestProgressOnTerminal(t *testing.T) {
	const records, partitions = 3000, 1200 // more partitions than one reset commit takes
	var in strings.Builder
	for i := range records {
		fmt.Fprintf(&in, "record %d\n", i)
	}
	path := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(path, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newKfake(t, "")
	c.mustRun(t, "topic", "create", "t", "--partitions", fmt.Sprint(partitions))
	for _, terminal := range []bool{false, true} {
		c.stderrTerminal = terminal
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		c.stdin = f
		c.mustRun(t, "produce", "t")
		f.Close()
		stderr := c.err.String()
		want := fmt.Sprintf("produce t: %d records sent, %d acknowledged, 0 failed, 100%% of the input read\n", records, records)
		if terminal && (!strings.HasPrefix(stderr, "\r\033[K") || !strings.HasSuffix(stderr, want)) {
			t.Errorf("produce on a terminal: stderr ends %q, want %q", tail(stderr), want)
		}
		if !terminal && stderr != "" {
			t.Errorf("produce off a terminal wrote %q", tail(stderr))
		}

		out := c.mustRun(t, "group", "reset-offsets", "g", "--topic", "t", "--to-latest")
		stderr = c.err.String()
		committed := fmt.Sprintf("committed %d of %d partitions", partitions, partitions)
		if terminal && (!strings.Contains(stderr, "reset offsets of group g: committed 0 of") ||
			!strings.Contains(stderr, committed) || !strings.HasSuffix(stderr, "\r\033[K")) {
			t.Errorf("reset-offsets on a terminal: stderr ends %q, want progress up to %q, then the line cleared", tail(stderr), committed)
		}
		if !terminal && stderr != "" {
			t.Errorf("reset-offsets off a terminal wrote %q", tail(stderr))
		}
		if n := strings.Count(out, "\nt "); n != partitions {
			t.Errorf("reset-offsets printed %d partitions, want %d", n, partitions)
		}
	}
}

func tail(s string) string { return s[max(0, len(s)-200):] }
