// Command chaos is StreamHouse's chaos suite: it runs a cluster of real processes on loopback (three
// etcd members, the S3 endpoint, three agents, each agent reaching etcd and S3 through
// fault-injecting proxies), drives it with Kafka clients in the shape of Jepsen's queue workload,
// injects one fault at a time from a seeded schedule, and checks the recorded history for lost,
// duplicated or reordered records and commits going backwards.
//
//	go run ./e2e/chaos --bin bin/streamhouse --etcd-bin bin/etcdmember            # CI: every fault twice
//	go run ./e2e/chaos --mode long --duration 30m --seed 1234 ...                  # a long run, replayable
//
// "make chaos" and "make chaos-long" build the binaries and run it; docs/CHAOS.md says how to read
// its report. It exits 1 when the checker finds an anomaly, a fault could not be injected or healed,
// or the cluster did not recover from one; 2 on bad flags.
package main
