// Package kwire is the agent's Kafka wire code that holds no agent state: request framing (size
// prefixes, headers, decoding through franz-go's kmsg, response frames), the validation of produced
// record batches as Kafka's LogValidator does it (decompressing, bounded), patching stored batches for
// a fetch (base offset, leader epoch), the pooled buffers fetch responses are written into, and the
// bound on what decoding a produce request may allocate.
//
// What the agent serves is the agent's: ParseRequest takes the table of served versions (Versions) as
// an argument. Everything here is a pure function of its input or a process-wide pool, so each decoder
// has a fuzz test and nothing here needs a cluster to test.
//
// kwire must not import anything of StreamHouse but segstore (for the stored CRC): no coord, no
// agent state, no metrics, no logging. Errors are sentinels the agent maps to Kafka codes
// (agent/errors.go).
package kwire
