package cluster

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Agents and etcd members are restarted on the ports they had, as a deploy would: a restarted agent
// with its old address revokes its predecessor's lease at once. A port picked by the kernel (port 0)
// comes from the ephemeral range, where an outgoing connection may take it while the process is
// down; so fixed ports are picked below that range, and each is checked free when picked.
const (
	portSpan       = 12000 // ports below the ephemeral range to pick from
	lowestPort     = 10000
	defaultLowPort = 32768 // Linux's default start of the ephemeral range
	portAttempts   = 200
)

var (
	portsMu sync.Mutex
	used    = map[int]bool{} // picked by this process: never handed out twice
)

// freePort returns a port on 127.0.0.1 that nothing listens on, below the ephemeral range.
func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	high := ephemeralLow()
	low := max(lowestPort, high-portSpan)
	for range portAttempts {
		port := low + rand.IntN(high-low)
		if used[port] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		ln.Close()
		used[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port between %d and %d after %d attempts", low, high, portAttempts)
}

func freeAddr() (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultLowPort
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return defaultLowPort
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= lowestPort+1000 {
		return defaultLowPort
	}
	return n
}
