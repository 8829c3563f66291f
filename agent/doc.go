// Package agent is a StreamHouse agent: the Kafka protocol server (every request and response through
// franz-go's kmsg), the produce pipeline (buffer, one object per flush, sequence and commit), the fetch path
// and its cache, and the agent's HTTP endpoints (health, readiness, metrics).
//
// Parts with no need of the agent's state live in rooms of their own under agent/internal (the map and
// what each may import are in docs/INTERNALS.md, "Packages of the agent"): kwire (Kafka framing,
// batch validation, record buffers), extcache (the read cache), group (the consumer group coordinator)
// and lifecycle (maintenance and GC). This package holds the handlers, one file per API, the write
// path, leadership and the wiring; the rooms never import it.
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
