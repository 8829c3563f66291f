// Package txn is the transaction coordinator: the state machine of the transactional ids whose
// shards this agent leads (docs/INTERNALS.md, "Transactions"). A transactional id hashes to a shard,
// a partition of the agent group's offsets topic, as a consumer group does; the shard's leader is its
// coordinator, and every write of its state is fenced by the shard's leader key.
//
// It owns: the in-memory state of the ids of the shards it is asked about (loaded from etcd when the
// agent starts leading a shard, dropped when it stops), the transitions of Kafka's transaction state
// machine (InitProducerID with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn), each
// persisted before it is answered, the completion of a decided transaction (its markers, then its
// Complete state), the abort of transactions past their timeout, and the expiry of idle ids.
//
// It declares what it needs as small interfaces of its own: Store (the etcd state, *coord.Client) and
// Markers (whoever writes control batches into partitions and resolves groups' pending offsets). It
// must not import the agent package, decode Kafka requests (the agent's handlers do, and give it plain
// values) or write anything into a partition itself; it answers with franz-go's kerr errors, which the
// agent maps to wire codes. New starts nothing; Run owns the goroutines, which stop when its context
// ends.
package txn
