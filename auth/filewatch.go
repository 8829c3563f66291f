package auth

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// fileCheckInterval is how often a watched file's stamp is compared: a handshake costs no stat
// calls in between.
const fileCheckInterval = time.Second

// fileStamp is what tells that a file changed: its modification time and size.
type fileStamp struct {
	mod  time.Time
	size int64
}

// watched is a value loaded from files and loaded again when any of them changes (certificates
// renewed in place, a JWKS file rewritten). A load that fails, a half-written pair say, keeps the
// last good value and is tried again at the next check.
type watched[T any] struct {
	paths    []string
	load     func() (T, error)
	onReload func(err error) // called after each reload attempt, if set
	now      func() time.Time

	mu      sync.Mutex
	val     T
	loaded  bool
	stamps  []fileStamp
	checked time.Time
}

func newWatched[T any](load func() (T, error), onReload func(error), now func() time.Time, paths ...string) (*watched[T], error) {
	if now == nil {
		now = time.Now
	}
	w := &watched[T]{paths: paths, load: load, onReload: onReload, now: now}
	stamps, err := w.stat()
	if err != nil {
		return nil, err
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	w.val, w.loaded, w.stamps, w.checked = v, true, stamps, w.now()
	return w, nil
}

func (w *watched[T]) stat() ([]fileStamp, error) {
	out := make([]fileStamp, len(w.paths))
	for i, p := range w.paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
		out[i] = fileStamp{mod: fi.ModTime(), size: fi.Size()}
	}
	return out, nil
}

// get returns the current value, loading it again first when a file changed.
func (w *watched[T]) get() T {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.now()
	if d := now.Sub(w.checked); d >= 0 && d < fileCheckInterval { // a clock stepped back checks at once
		return w.val
	}
	w.checked = now
	stamps, err := w.stat()
	if err != nil || equalStamps(stamps, w.stamps) {
		if err != nil && w.onReload != nil {
			w.onReload(err)
		}
		return w.val
	}
	v, err := w.load()
	if w.onReload != nil {
		w.onReload(err)
	}
	if err != nil {
		return w.val
	}
	w.val, w.stamps = v, stamps
	return v
}

func equalStamps(a, b []fileStamp) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].mod.Equal(b[i].mod) || a[i].size != b[i].size {
			return false
		}
	}
	return true
}

var errNoKeys = errors.New("no usable keys")
