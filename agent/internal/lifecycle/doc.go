// Package lifecycle keeps a partition's cost following what it retains, not how long it has run: its
// leader merges the partition's uncompacted entries (extents of many flush objects, listed in commit
// records) into partition segments, merges segments level by level up to segment.bytes, and applies
// retention by moving the log start; one agent at a time garbage-collects what nothing references any
// more (docs/INTERNALS.md, "Lifecycle").
//
// Planning is pure (Next: a partition's index, its policy and the time in, one step out) so that it can
// be tested on its own and a new leader plans what its predecessor would have. Executing a step reads
// and writes objects and makes one fenced etcd write through the small interfaces declared here; it
// never touches the Kafka protocol, and it decides nothing about leadership: the agent tells it which
// partitions it leads, at which epochs.
package lifecycle
