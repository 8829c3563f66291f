package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// DefaultEvery is how often a Line redraws at most: often enough to look live, rarely enough that
// redrawing costs nothing next to the work it reports.
const DefaultEvery = 100 * time.Millisecond

// Line is one status line on a terminal. Its methods are safe for concurrent use; on a writer that is
// not a terminal they do nothing.
type Line struct {
	w     io.Writer // nil: off
	every time.Duration
	now   func() time.Time

	mu    sync.Mutex
	last  time.Time // of the last draw
	shown int       // width of the text on screen; 0: nothing shown
	text  string    // the latest text, drawn or not
}

// New is a Line on f, on only when f is a terminal.
func New(f *os.File) *Line { return NewWriter(f, f != nil && term.IsTerminal(int(f.Fd()))) }

// NewWriter is a Line on w when on, else a Line that writes nothing.
func NewWriter(w io.Writer, on bool) *Line {
	l := &Line{every: DefaultEvery, now: time.Now}
	if on {
		l.w = w
	}
	return l
}

// On says whether the Line draws at all.
func (l *Line) On() bool { return l != nil && l.w != nil }

// Set makes the status the formatted text, drawn now unless the last draw was under DefaultEvery ago
// (then Flush or a later Set draws it).
func (l *Line) Set(format string, args ...any) {
	if !l.On() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.text = fmt.Sprintf(format, args...)
	if now := l.now(); now.Sub(l.last) >= l.every {
		l.draw(now)
	}
}

// Flush draws the latest text now, throttling aside: the final figures of a step.
func (l *Line) Flush() {
	if !l.On() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.draw(l.now())
}

// Clear erases the line, so that other output starts on a clean one; the next Set draws again.
func (l *Line) Clear() {
	if !l.On() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.shown > 0 {
		fmt.Fprint(l.w, "\r\033[K")
		l.shown = 0
	}
	l.last = time.Time{}
}

// Done draws the latest text and ends its line, leaving it on screen.
func (l *Line) Done() {
	if !l.On() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.text != "" {
		l.draw(l.now())
		fmt.Fprintln(l.w)
	}
	l.shown, l.text, l.last = 0, "", time.Time{}
}

func (l *Line) draw(now time.Time) {
	fmt.Fprintf(l.w, "\r\033[K%s", l.text)
	l.shown, l.last = len(l.text)+1, now
}
