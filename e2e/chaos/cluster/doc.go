// Package cluster runs the chaos suite's StreamHouse cluster on loopback: a three-member etcd
// cluster (each member a process of cmd/etcdmember), the S3 endpoint (segstore's, in this process)
// behind the S3 fault layer, and agents, each a "streamhouse agent" process with its own ports and
// log file, reaching etcd and S3 only through fault-injecting proxies of its own. It exposes what
// the faults act on: processes to kill, pause and restart, links to cut or slow down, S3 requests
// to fail; and what the runner waits for: a healthy cluster.
package cluster
