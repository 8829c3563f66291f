package coord

import "context"

// Changer is a view that says when it changes: its Changed channel is closed at its next change.
// *Cache is one.
type Changer interface {
	Changed() <-chan struct{}
}

// WaitFor waits until done reports true, asking it again after each change of v, and returns its last
// answer: false if ctx ended first. done reads the view; the change channel is taken before each call,
// so that a change in between is never missed.
func WaitFor(ctx context.Context, v Changer, done func() bool) bool {
	for {
		changed := v.Changed()
		if done() {
			return true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return done()
		}
	}
}
