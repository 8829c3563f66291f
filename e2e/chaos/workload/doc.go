// Package workload is the chaos suite's traffic, in the shape of Jepsen's queue workload: franz-go
// idempotent producers (acks=all) writing unique values to every partition of several topics, a
// consumer reading every partition by assignment, and two consumer groups (one committing each
// poll's records with CommitRecords, one autocommitting), with members leaving and joining. Every
// send, poll and commit goes into a history with its start, end and outcome; the checker judges it.
//
// Beside it, on topics of its own, the transactional workload (txn.go, TxnWorkload): transactional
// producers committing and deliberately aborting transactions, a GroupTransactSession
// consume-transform-produce stage, a read_committed consumer and a final read_committed drain.
//
// It reaches the cluster only through the Kafka protocol.
package workload
