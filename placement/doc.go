// Package placement decides, from plain data, which agent should lead which partition and which agent
// a client in a given zone should talk to. It is pure: no I/O, no clocks, no randomness, so that every
// agent computing it from the same view reaches the same answer.
package placement
