package e2e

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kbin"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// wireIOTimeout bounds every read and write of a wireConn, so that a missing answer fails the test
// instead of hanging it.
const wireIOTimeout = 30 * time.Second

// wireConn is one Kafka connection driven by hand, byte by byte: for what no client library sends (a
// frame cut off halfway, a made-up producer id, an inflated array, a fetch that waits forever).
type wireConn struct {
	t    *testing.T
	nc   net.Conn
	r    *bufio.Reader
	corr int32
}

// dialWire connects to addr from the local address from ("" for any): loopback addresses other than
// 127.0.0.1 let one test be several clients to the agent's per-address limits.
func dialWire(addr, from string) (*wireConn, error) {
	d := net.Dialer{Timeout: wireIOTimeout}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &wireConn{nc: nc, r: bufio.NewReader(nc)}, nil
}

// mustDialWire is dialWire for the test's goroutine; the connection is closed when the test ends.
func mustDialWire(t *testing.T, addr, from string) *wireConn {
	t.Helper()
	c, err := dialWire(addr, from)
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	t.Cleanup(func() { c.nc.Close() })
	return c
}

// frameOf encodes req at version as a client sends it, with correlation id corr.
func frameOf(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len("hostile")))
	b = append(b, "hostile"...)
	if req.IsFlexible() {
		b = append(b, 0) // no header tags
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

// write sends bytes as they are.
func (c *wireConn) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(wireIOTimeout))
	_, err := c.nc.Write(b)
	return err
}

// send writes req at version and returns its correlation id.
func (c *wireConn) send(req kmsg.Request, version int16) int32 {
	c.t.Helper()
	c.corr++
	if err := c.write(frameOf(req, version, c.corr)); err != nil {
		c.t.Fatalf("send %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return c.corr
}

// recv reads the next answer into resp (its version set) and returns its correlation id.
func (c *wireConn) recv(resp kmsg.Response) (int32, error) {
	c.nc.SetReadDeadline(time.Now().Add(wireIOTimeout))
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return 0, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.r, body); err != nil {
		return 0, err
	}
	if len(body) < 4 {
		return 0, fmt.Errorf("answer of %d bytes", len(body))
	}
	rd := kbin.Reader{Src: body[4:]}
	if resp.IsFlexible() && resp.Key() != int16(kmsg.ApiVersions) {
		kmsg.SkipTags(&rd)
	}
	if err := resp.ReadFrom(rd.Src); err != nil {
		return 0, fmt.Errorf("decode %s: %w", kmsg.NameForKey(resp.Key()), err)
	}
	return int32(binary.BigEndian.Uint32(body)), nil
}

// roundTrip sends req and reads its answer.
func (c *wireConn) roundTrip(req kmsg.Request, version int16) kmsg.Response {
	c.t.Helper()
	corr := c.send(req, version)
	resp := req.ResponseKind()
	resp.SetVersion(version)
	got, err := c.recv(resp)
	if err != nil {
		c.t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	if got != corr {
		c.t.Fatalf("%s: answer to correlation id %d, want %d", kmsg.NameForKey(req.Key()), got, corr)
	}
	return resp
}

// waitClosed waits until the agent closes the connection, reading and dropping any answers on the way;
// it fails if the connection is still open after timeout.
func (c *wireConn) waitClosed(timeout time.Duration) error {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("connection still open after %v", timeout)
	}
	return nil // EOF (nil from io.Copy) or a reset
}

// rssBytes is the resident set size of process pid (VmRSS in /proc/<pid>/status).
func rssBytes(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", rest, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}
