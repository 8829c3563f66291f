//go:build !unix

package agent

// openFileLimit is unknown here: connections are capped only by Config.MaxConnections.
func openFileLimit() uint64 { return 0 }
