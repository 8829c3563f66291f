// Package fault is the chaos suite's faults, each one small implementation of Fault, as in etcd's
// robustness tests: a name, an injection and a healing. A fault acts on the cluster only through
// the Cluster interface, so that it can be tested against a fake; Schedule picks faults, their
// targets and how long each lasts from a seed, so that a run's schedule can be replayed.
package fault
