// Package cleaner holds what compacting a topic does to bytes: the bounded key→offset map built over a
// partition's dirty records, walking a v2 record batch's records (decompressing it), and rewriting a
// batch with only the records kept (recompressed with its codec, its CRC recomputed, its base offset and
// last offset delta unchanged). It also answers the produce path's question of whether a batch holds a
// record without a key (refused on a compacted topic).
//
// Everything here is a pure function of its arguments: no I/O, no etcd, no clock, no goroutines. The
// lifecycle room decides when a partition is cleaned, reads and writes the objects and commits the fenced
// Txn (docs/INTERNALS.md, "Compacted topics: the cleaner"); it is a room of its own because a codec-sized
// body of byte handling, with its own fuzz and property tests, would drown lifecycle's decisions.
//
// It must not import the agent, coord or segstore packages: bytes in, bytes out. Everything it decodes
// came from S3 or a client, so nothing here may panic on any input (FuzzRewrite, FuzzRecords).
package cleaner
