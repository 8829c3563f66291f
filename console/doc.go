// Package console is the read-only web console every agent serves on its HTTP address: agents by
// zone and agent group, topics and partitions (leader, epoch, log start, high watermark, bytes,
// objects), consumer groups (members, assignments, lag per partition), recent failovers, and small
// charts of the cluster's live rates (this agent's own, plus those every other registered agent serves
// it at /api/rates, summed). Pages are server-rendered html/template, embedded in the binary
// with a little JavaScript for the charts; every table works with JavaScript off.
//
// It owns the pages, the cluster gauges streamhouse_cluster_* (computed from the watched view at
// scrape time) and the in-memory rings of recent events and rate samples. It reads the cluster
// through the narrow interfaces it declares (View, GroupStore, a prometheus.Gatherer), and other
// agents through their HTTP ports (GET /api/rates, prepared by Config.Peer): it must not import the
// agent package, write to etcd or S3, or offer any handler that changes anything.
//
// New wires and starts nothing; Run follows the view and samples the rates until its context ends.
package console
