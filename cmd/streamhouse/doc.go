// Command streamhouse is StreamHouse's one binary. Each subcommand lives in its own file and only wires
// flags to packages:
//
//	dev       embedded etcd, an embedded S3 endpoint and N agents in one process (development)
//	agent     one production agent against an etcd cluster and an S3 bucket
//	topic     create, list, describe and delete topics over the Kafka protocol
//	produce   write stdin, one record per line, to a topic
//	consume   print a topic's records, one per line
//	version   print the build's version
//
// Every flag of dev and agent can also be given as an environment variable STREAMHOUSE_<FLAG> (upper
// case, '-' → '_'); a flag on the command line wins. The Kafka client commands read STREAMHOUSE_BROKERS.
//
// A failure prints one line, "streamhouse: <error>", to stderr and exits non-zero: 2 for a usage error
// (bad flag or value, missing argument), 1 for anything else. Logic beyond that wiring belongs in the
// packages: agent, coord, segstore.
package main
