// Package future owns Future: a value and an error delivered once, to any number of waiters, with
// the channel that says they are there. The write path (an append's offset), the flush (its object
// write) and the read cache (an extent's bytes) each need that one shape.
//
// It imports nothing of StreamHouse; anything may import it.
package future
