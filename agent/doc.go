// Package agent is a StreamHouse agent: the Kafka protocol server (every request and response through
// franz-go's kmsg), the produce pipeline (buffer, one object per flush, sequence and commit), the fetch path
// and its cache, and the agent's HTTP endpoints (health, readiness, metrics).
//
// An agent keeps no state of its own. It reaches etcd only through package coord and the object store only
// through package segstore, each through the small interfaces declared here by their consumer.
//
// The write path is two separate steps, so that a partition leader in another zone can do the second one:
//
//	write:    produce requests → buffer → one segment object per flush (segstore)
//	sequence: the partition leader checks producer sequences, assigns offsets and commits the index
//	          entries in a Txn fenced by its leader epoch (coord); only then are the produces acknowledged.
package agent
