// Package e2e holds StreamHouse's multi-process tests: they build the streamhouse binary once, run
// "streamhouse dev" and "streamhouse agent" as real processes on free ports and temporary data
// directories, and drive them with real Kafka clients (kcat, sarama, franz-go and streamhouse's own
// CLI), the way a user would. They check what only whole processes can show: every compression codec
// round-trips through a client that is not ours, offsets stay dense, a SIGTERM or a SIGKILL of dev mode
// loses nothing that was acknowledged, start-up errors are one line and an exit code, and a separate
// agent process joins dev's etcd and S3.
//
// The package owns no product code: it has only this file and tests, and product code must never
// import it. It reaches the product only through the binary's command line, its stdout and stderr, its
// HTTP endpoints and the Kafka protocol. The tests skip under -short; the kcat tests fail when kcat is
// not installed, the console's browser test when chromium is not ("make deps" installs both). "make e2e" runs just this package; "make test" runs it with
// everything else.
package e2e
