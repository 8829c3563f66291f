package future

import "context"

// Future is a result set once. The zero value is not usable: make one with Make or Resolved. It must
// not be copied once in use.
type Future[T any] struct {
	done chan struct{}
	v    T
	err  error
}

// closed is the done channel of every Future made resolved.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Make returns a Future not yet set.
func Make[T any]() Future[T] { return Future[T]{done: make(chan struct{})} }

// Resolved returns a Future set to v and err from the start.
func Resolved[T any](v T, err error) Future[T] { return Future[T]{done: closed, v: v, err: err} }

// Set delivers v and err and wakes every waiter. It must be called once (a second call panics).
func (f *Future[T]) Set(v T, err error) {
	f.v, f.err = v, err
	close(f.done)
}

// Done is closed once the result is set.
func (f *Future[T]) Done() <-chan struct{} { return f.done }

// IsDone reports whether the result is set.
func (f *Future[T]) IsDone() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// Result is the result; call it only once Done is closed.
func (f *Future[T]) Result() (T, error) { return f.v, f.err }

// Wait waits for the result, or for ctx to end (then its error).
func (f *Future[T]) Wait(ctx context.Context) (T, error) {
	select {
	case <-f.done:
		return f.v, f.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
