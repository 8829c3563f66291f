// Package segstore owns the segment object format and the object stores that hold segment objects.
//
// It provides:
//   - the flush object format (AppendObject, Decode, VerifyExtent; layout in docs/INTERNALS.md) and
//     object naming (NewObjectKey: "seg/<ULID>-<agent id>", unique per write; ObjectTime reads a
//     key's time back);
//   - the partition segment format (partseg.go: one partition's batches in CRC-checked blocks, a
//     footer indexing them; PlanPartSegment, BuildPartSegment, PlanPartMerge, the decoders) and its
//     naming (NewPartKey: "part/<topic id>/<partition>/<ULID>-<agent id>");
//   - a small, context-first store interface (Reader split from Writer, Store adding Delete, List,
//     ListObjects and Check; consumers declare interfaces embedding just what they call) with
//     in-memory (Memory), on-disk (Disk) and S3 (S3) implementations that all pass one contract
//     test; Writer.PutReader streams an object of known size (a merge) without holding it;
//   - wrappers around any Store: Metrics (Prometheus), Faulty (fault injection for tests) and Latency
//     (simulated S3 latency and SlowDown, by profile: none, standard, express);
//   - S3Server, an embedded S3-compatible endpoint on a local directory for dev mode and tests, so
//     that dev mode, tests and production all go through the same S3 client code.
//
// Objects are immutable: Put never overwrites (ErrExists), which is what makes a zombie leader's late
// write harmless.
//
// segstore must not know etcd or the index: it stores and checks bytes. Of Kafka it knows only the
// framing of a record batch (length, offsets, max timestamp), which a partition segment's blocks are
// checked against. Which objects are visible, and what the extents and segments mean, is decided by
// coord and agent.
package segstore
