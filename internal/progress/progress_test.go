package progress

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// Off a terminal a Line writes nothing whatever it is asked.
func TestLineOff(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	l := NewWriter(&b, false)
	l.Set("x %d", 1)
	l.Flush()
	l.Clear()
	l.Done()
	if b.Len() != 0 || l.On() {
		t.Errorf("wrote %q", b.String())
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if New(f).On() {
		t.Error("a Line on a regular file is on")
	}
}

// On a terminal Set redraws at most every DefaultEvery, Flush draws at once, Done leaves the last
// text on its own line.
func TestLineThrottles(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	now := time.Unix(0, 0)
	l := NewWriter(&b, true)
	l.now = func() time.Time { return now }
	l.Set("a")
	l.Set("b") // within DefaultEvery: not drawn
	if got := b.String(); got != "\r\033[Ka" {
		t.Fatalf("after two quick sets: %q", got)
	}
	now = now.Add(DefaultEvery)
	l.Set("c")
	l.Set("d")
	l.Flush()
	l.Clear()
	l.Set("e")
	l.Done()
	want := "\r\033[Ka" + "\r\033[Kc" + "\r\033[Kd" + "\r\033[K" + "\r\033[Ke" + "\r\033[Ke\n"
	if got := b.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
