// Package extcache is the agent's read cache of stored extents: verified bytes of byte ranges of
// segment objects, kept in an LRU within a byte budget. Concurrent reads of one extent share one GET;
// extents that lie close together in one object are read by one GET (Coalesce); the bytes of GETs
// under way are bounded, so that fetches that answer without their reads cannot pile reads up. What
// the agent has just written is kept as it is (write-through, Keep), slices of a request frame
// included, the frame charged once (Backing).
//
// It needs a ranged GET (Store), counters (Metrics) and a goroutine starter with its owner's run
// context (Config.Go); it decides nothing about which extents a fetch needs (the agent plans that and
// hands it a Plan). It satisfies lifecycle.Extents.
//
// extcache must not import agent, coord beyond its Extent type, or the Kafka protocol; it talks to
// the object store only through Store.
package extcache
