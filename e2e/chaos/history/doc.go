// Package history is the record of a chaos run: every send, every poll, every group commit and
// every fault, each with when it started and ended and how it ended, in the shape of Jepsen's queue
// workload. The workload writes it, the checker reads it; a run keeps it as JSON lines so that a
// failure can be examined, or checked again, afterwards.
package history
