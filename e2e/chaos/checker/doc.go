// Package checker finds anomalies in a chaos run's history: what a Kafka-compatible log must never
// do, whatever faults it went through. It looks only at what clients saw (package history), never at
// the system's own state, as Jepsen's queue checker does.
package checker
