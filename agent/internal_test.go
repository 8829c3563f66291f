package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
	"github.com/streamhouse/streamhouse/coord"
	"github.com/streamhouse/streamhouse/segstore"
)

// anonymousSequenceFrame is a sequence request (key 32700 v0) as anyone can write one: appends of
// records that exist nowhere, 2^31-1 at a time, in an object nobody wrote.
func anonymousSequenceFrame(topic string, partition int32, appends int) []byte {
	body := rawHeader(apiKeySequence, 0, 1)
	body = append(body, `{"appends":[`...)
	for i := range appends {
		if i > 0 {
			body = append(body, ',')
		}
		body = fmt.Appendf(body, `{"topic":%q,"partition":%d,"object":"seg/01J0000000000000000000000-nobody","pos":32,"len":70,`+
			`"crc":1,"records":%d,"maxTs":0,"pid":-1,"pepoch":-1,"seq":-1}`, topic, partition, math.MaxInt32)
	}
	return sized(append(body, "]}"...))
}

// The sequence API is not served on the client listener: three anonymous appends of 2^31-1 records
// each (the reproducer, which moved a high watermark to 6,442,450,956) close the connection,
// as any API the listener does not serve, and move nothing.
func TestSequenceAPIRefusedOnClientListener(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "victim")
	tp := topicTP(t, a, "victim", 0)
	for range 3 {
		attacker := dialRaw(t, a)
		attacker.writeRaw(anonymousSequenceFrame(tp.Topic.String(), 0, 1))
		attacker.expectClosed()
	}
	if hwm := c.highWatermark("victim", 0); hwm != 0 {
		t.Fatalf("high watermark %d after anonymous sequence requests, want 0", hwm)
	}
	wantOK(t, "produce after", c.produceOne("victim", 0, valueBatch(-1, -1, -1, nil, "real")).ErrorCode)
	checkLog(t, a, "victim", 0, []string{"real"})
}

// dialInternal connects to a's internal listener as agent id, proving the cluster secret.
func dialInternal(t *testing.T, a *Agent, id string) *peerConn {
	t.Helper()
	c, err := dialPeer(testCtx(t), a.InternalAddr(), a.secret, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

// sequence sends appends and returns the leader's answer for each.
func (c *peerConn) sequence(t *testing.T, appends ...seqAppend) []seqResult {
	t.Helper()
	_, body, err := c.roundTrip(&sequenceRequest{Appends: appends})
	if err != nil {
		t.Fatal(err)
	}
	var resp sequenceResponse
	if err := resp.ReadFrom(body); err != nil {
		t.Fatal(err)
	}
	if len(resp.Results) != len(appends) {
		t.Fatalf("%d results for %d appends", len(resp.Results), len(appends))
	}
	return resp.Results
}

// putObject writes a segment object of agent id holding batches, all for tp, as that agent's flush
// would, and returns where each batch lies.
func putObject(t *testing.T, tc *testCluster, id string, tp coord.TP, batches ...[]byte) []seqAppend {
	t.Helper()
	var chunks []segstore.Chunk
	for _, b := range batches {
		chunks = append(chunks, segstore.Chunk{TopicID: tp.Topic, Partition: tp.Partition, Data: b})
	}
	obj, extents := segstore.AppendObject(nil, chunks)
	key := segstore.NewObjectKey(id)
	if err := tc.store.Put(testCtx(t), key, obj); err != nil {
		t.Fatal(err)
	}
	out := make([]seqAppend, len(extents))
	for i, e := range extents {
		out[i] = seqAppend{Topic: tp.Topic, Partition: tp.Partition, Object: key, Pos: e.Pos, Len: e.Len, CRC: e.CRC}
	}
	return out
}

// A leader sequences a forwarded extent only if it is in an object of the calling agent and its
// bytes are a valid batch with the CRC claimed; the record count comes from the bytes. It reads the
// extents of one object with one GET.
func TestInternalSequenceChecksTheBytes(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "checked")
	tp := topicTP(t, a, "checked", 0)
	var gets sync.Map // object key → GETs
	tc.store.SetFault(segstore.OpGetRange, func(key string) error {
		n, _ := gets.LoadOrStore(key, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		return nil
	})
	peer := dialInternal(t, a, "a2")

	good := putObject(t, tc, "a2", tp, valueBatch(-1, -1, -1, nil, "g0", "g1", "g2"), valueBatch(-1, -1, -1, nil, "g3"))
	h := kwiretest.PlainSpec(1)
	h.LastDelta, h.NumRecords = math.MaxInt32-1, math.MaxInt32
	inflated := putObject(t, tc, "a2", tp, kwiretest.Build(h, kwiretest.Record(0, 0, []byte{'x'})))[0]
	wrongCRC := putObject(t, tc, "a2", tp, valueBatch(-1, -1, -1, nil, "c"))[0]
	wrongCRC.CRC ^= 1
	others := putObject(t, tc, "a1", tp, valueBatch(-1, -1, -1, nil, "not a2's"))[0]
	missing := seqAppend{Topic: tp.Topic, Partition: 0, Object: segstore.NewObjectKey("a2"), Pos: 32, Len: 70, CRC: 1}
	unknown := good[0]
	unknown.Topic = coord.NewTopicID()

	results := peer.sequence(t, good[0], inflated, wrongCRC, others, missing, unknown, good[1])
	for i, want := range []*kerr.Error{nil, kerr.InvalidRecord, kerr.CorruptMessage, kerr.InvalidRequest,
		kerr.KafkaStorageError, kerr.UnknownTopicOrPartition, nil} {
		if want == nil {
			wantOK(t, fmt.Sprintf("append %d", i), results[i].Code)
		} else {
			wantCode(t, fmt.Sprintf("append %d", i), results[i].Code, want)
		}
	}
	if results[0].Base != 0 || results[6].Base != 3 {
		t.Fatalf("bases %d and %d, want 0 and 3: the counts come from the batches", results[0].Base, results[6].Base)
	}
	if hwm := c.highWatermark("checked", 0); hwm != 4 {
		t.Fatalf("high watermark %d, want 4", hwm)
	}
	checkLog(t, a, "checked", 0, []string{"g0", "g1", "g2", "g3"})
	if n, _ := gets.Load(good[0].Object); n == nil || n.(*atomic.Int32).Load() != 1 {
		t.Fatalf("the object of two forwarded extents was read with %v GETs, want 1", n)
	}
	for reason, want := range map[string]float64{"not_own_object": 1, "read_failed": 1, "invalid_batch": 2} {
		if got := testutil.ToFloat64(a.metrics.trust.forwardRefused.WithLabelValues(reason)); got != want {
			t.Errorf("forward_refused_total{reason=%q} = %v, want %v", reason, got, want)
		}
	}
}

// Without the cluster secret the internal listener serves nothing: a sequence request sent straight
// away, a dialer with another secret, and one that sends a made-up proof are all closed, counted,
// and move no offset.
func TestInternalListenerRefusesWithoutSecret(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "guarded")
	tp := topicTP(t, a, "guarded", 0)
	failures := func() float64 { return testutil.ToFloat64(a.metrics.trust.authFailures) }

	raw := dialRawAddr(t, a.InternalAddr())
	raw.writeRaw(anonymousSequenceFrame(tp.Topic.String(), 0, 3))
	raw.expectClosed()
	waitFor(t, "the anonymous request counted", func() bool { return failures() == 1 })

	other := bytes.Repeat([]byte{7}, coord.SecretLen)
	if _, err := dialPeer(testCtx(t), a.InternalAddr(), other, "a2", nil); !errors.Is(err, errHandshake) {
		t.Fatalf("dialing with another secret: %v, want %v", err, errHandshake)
	}
	waitFor(t, "the wrong secret counted", func() bool { return failures() == 2 })

	forger := dialRawAddr(t, a.InternalAddr())
	forger.writeRaw(append(append([]byte(handshakeMagic), make([]byte, handshakeNonce)...), 0, 2, 'a', '2'))
	challenge := make([]byte, handshakeNonce+32)
	if _, err := io.ReadFull(forger.r, challenge); err != nil {
		t.Fatal(err)
	}
	forger.writeRaw(make([]byte, 32)) // a proof made up
	forger.writeRaw(anonymousSequenceFrame(tp.Topic.String(), 0, 1))
	forger.expectClosed()
	waitFor(t, "the forged proof counted", func() bool { return failures() == 3 })

	if hwm := c.highWatermark("guarded", 0); hwm != 0 {
		t.Fatalf("high watermark %d, want 0", hwm)
	}
}

// dialRawAddr is dialRaw to any address.
func dialRawAddr(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

// Both sides of the handshake: the same secret authenticates the dialer's id; another secret fails
// on both sides; a dialer's recorded messages, replayed, do not authenticate (the listener's nonce is
// new).
func TestHandshake(t *testing.T) {
	t.Parallel()
	secret := bytes.Repeat([]byte{1}, coord.SecretLen)
	run := func(dialerSecret []byte, record *bytes.Buffer) (string, error, error) {
		d, l := net.Pipe()
		defer d.Close()
		defer l.Close()
		idc, errc := make(chan string, 1), make(chan error, 1)
		go func() {
			id, err := acceptHandshake(l, secret)
			idc <- id
			errc <- err
			l.Close()
		}()
		var rw io.ReadWriter = d
		if record != nil {
			rw = struct {
				io.Reader
				io.Writer
			}{d, io.MultiWriter(d, record)}
		}
		derr := dialHandshake(rw, dialerSecret, "agent-7")
		d.Close() // as dialPeer does on failure; the listener's read then ends
		return <-idc, <-errc, derr
	}
	var transcript bytes.Buffer
	if id, lerr, derr := run(secret, &transcript); id != "agent-7" || lerr != nil || derr != nil {
		t.Fatalf("same secret: id %q, listener %v, dialer %v", id, lerr, derr)
	}
	if _, lerr, derr := run(bytes.Repeat([]byte{2}, coord.SecretLen), nil); lerr == nil || !errors.Is(derr, errHandshake) {
		t.Fatalf("another secret: listener %v, dialer %v; want both to fail", lerr, derr)
	}
	replay := struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(transcript.Bytes()), io.Discard}
	if id, err := acceptHandshake(replay, secret); err == nil {
		t.Fatalf("a replayed handshake authenticated %q", id)
	}
}

// FuzzInternalHandshake drives the listener's side of the handshake, which reads whatever reaches
// the internal port: it must not panic, and nothing made up passes without the secret.
func FuzzInternalHandshake(f *testing.F) {
	f.Add(append(append([]byte(handshakeMagic), make([]byte, handshakeNonce)...), 0, 2, 'a', '2'))
	f.Add([]byte(handshakeMagic))
	f.Add(anonymousSequenceFrame("00112233445566778899aabbccddeeff", 0, 1))
	secret := bytes.Repeat([]byte{9}, coord.SecretLen)
	f.Fuzz(func(t *testing.T, data []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(data), io.Discard}
		if id, err := acceptHandshake(rw, secret); err == nil {
			t.Fatalf("authenticated %q without the secret", id)
		}
	})
}

// An agent registered without an internal address (an earlier version, during a rolling upgrade) is
// not forwarded to: clients of every zone are told it leads its partitions, and another agent asked
// to take produce for them answers NOT_LEADER_OR_FOLLOWER, as for a partition without a live leader.
func TestNoForwardingToAgentWithoutInternalListener(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	old := tc.agent("a1", func(c *Config) { c.AZ, c.InternalAddr = "z1", "" })
	a2 := tc.agent("a2", func(c *Config) { c.AZ = "z2" })
	cl := kgoClient(t, nil, old, a2)
	createTopic(t, cl, "upgrade", 4, nil)
	waitFor(t, "leadership balanced", func() bool { return leadsOf(old, "upgrade") == 2 && leadsOf(a2, "upgrade") == 2 })
	var oldP int32 = -1
	for p := range int32(4) {
		if old.lead.leading(topicTP(t, old, "upgrade", p)) != nil {
			oldP = p
		}
	}
	c := dialRaw(t, a2)
	wantCode(t, "produce to a2 for a partition led by an agent without an internal listener",
		c.produceOne("upgrade", oldP, valueBatch(-1, -1, -1, nil, "x")).ErrorCode, kerr.NotLeaderForPartition)

	// A z2 client is told the old agent leads its partitions, and its records get there.
	recs := produceN(t, zoneClient(t, "z2", a2), "upgrade", "z2", 40)
	consumed := consumeAll(t, []*Agent{a2}, "upgrade", len(recs))
	checkDense(t, recs, consumed)
	if got := testutil.ToFloat64(a2.metrics.zones.crossZoneBytes.WithLabelValues("metadata")); got != 0 {
		t.Fatalf("a2 forwarded %v bytes of sequencing to an agent without an internal listener", got)
	}
}

// Peers are told the bound internal address, or, when it is every interface, the advertised Kafka
// host with the bound port.
func TestAdvertisedInternal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ bound, advertised, want string }{
		{"127.0.0.1:9192", "127.0.0.1:9092", "127.0.0.1:9192"},
		{"10.0.0.5:9192", "agent-1.example:9092", "10.0.0.5:9192"},
		{"0.0.0.0:9192", "agent-1.example:9092", "agent-1.example:9192"},
		{"[::]:9192", "[fd00::1]:9092", "[fd00::1]:9192"},
		{"[::]:9192", "", "[::]:9192"},
	} {
		if got := advertisedInternal(tc.bound, tc.advertised); got != tc.want {
			t.Errorf("advertisedInternal(%q, %q) = %q, want %q", tc.bound, tc.advertised, got, tc.want)
		}
	}
}
