package workload

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// HostileConfig says what bad clients to run.
type HostileConfig struct {
	Brokers   func() []string // the agents' Kafka addresses
	IdleConns int             // idle connections held open to each agent
	// IdleFrom and From are the local addresses of the idle flood and of the other bad clients: apart,
	// so that the flood, which goes up to an agent's --max-connections-per-ip, leaves the others room.
	IdleFrom, From string
	Topic          string // a workload topic, which batches of made-up producer ids must never reach
	Quiet          string // a topic nothing is written to, for the long polls
}

// Hostile is bad clients against every agent, as a raw socket makes them: connections that stay idle
// up to the agents' limits, frames begun and never finished, fetches that ask to wait forever,
// produce from made-up producer ids, arrays inflated past what decoding may take. Each kind loops
// against each agent until Close. An answer an agent must never give (a made-up producer id taken, a
// frame over its decoding bound answered) is a violation, which Close returns.
type Hostile struct {
	cfg    HostileConfig
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu         sync.Mutex
	counts     map[string]int // what each kind sent
	violations []string
}

// Pacing of the bad clients: enough to keep every limit busy, not enough to load two cores.
const (
	hostileRedial    = time.Second // an idle connection the agent closed is opened again after this
	hostilePartial   = 500 * time.Millisecond
	hostileMadeUp    = 200 * time.Millisecond
	hostileInflated  = time.Second
	hostileIOTimeout = 60 * time.Second // an agent may be paused (SIGSTOP) past its lease TTL
	hostileClientID  = "chaos-hostile"
)

// StartHostile creates the quiet topic and starts the bad clients.
func StartHostile(ctx context.Context, cfg HostileConfig) (*Hostile, error) {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers()...)}, Security.opts()...)...)
	if err != nil {
		return nil, err
	}
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, cfg.Quiet)
	cl.Close()
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) { // a previous run of the fault made it
		return nil, fmt.Errorf("hostile: create %s: %w", cfg.Quiet, err)
	}
	hctx, cancel := context.WithCancel(context.Background())
	h := &Hostile{cfg: cfg, cancel: cancel, counts: map[string]int{}}
	for _, addr := range cfg.Brokers() {
		for range cfg.IdleConns {
			h.wg.Go(func() { h.idle(hctx, addr) })
		}
		for _, loop := range []func(context.Context, string){h.partial, h.longPolls, h.madeUp, h.inflated} {
			h.wg.Go(func() { loop(hctx, addr) })
		}
	}
	return h, nil
}

// Close stops the bad clients and returns what the agents answered that they never should have.
func (h *Hostile) Close() error {
	h.cancel()
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.violations) == 0 {
		return nil
	}
	return fmt.Errorf("hostile clients: %d violations, first: %s", len(h.violations), h.violations[0])
}

// Report says what the bad clients sent.
func (h *Hostile) Report() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	kinds := make([]string, 0, len(h.counts))
	for k := range h.counts {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = fmt.Sprintf("%s %d", k, h.counts[k])
	}
	return "hostile clients sent: " + strings.Join(parts, ", ")
}

func (h *Hostile) count(kind string) {
	h.mu.Lock()
	h.counts[kind]++
	h.mu.Unlock()
}

func (h *Hostile) violation(format string, args ...any) {
	h.mu.Lock()
	h.violations = append(h.violations, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

// hostileConn is one raw connection of a bad client.
type hostileConn struct {
	nc net.Conn
	r  *bufio.Reader
}

func dialFrom(ctx context.Context, addr, from string) (*hostileConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if Security.TLS != nil {
		// Through TLS to the Kafka framing; without a SASL login a secured agent closes the
		// connection at the first request that is not SASL, which no check of a bad client minds.
		nc = tls.Client(nc, Security.TLS.Clone())
	}
	context.AfterFunc(ctx, func() { nc.Close() })
	return &hostileConn{nc: nc, r: bufio.NewReader(nc)}, nil
}

func (c *hostileConn) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(hostileIOTimeout))
	_, err := c.nc.Write(b)
	return err
}

// next reads one answer frame: its correlation id and body.
func (c *hostileConn) next() (int32, []byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(hostileIOTimeout))
	var size [4]byte
	if _, err := io.ReadFull(c.r, size[:]); err != nil {
		return 0, nil, err
	}
	body := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.r, body); err != nil || len(body) < 4 {
		return 0, nil, errors.Join(err, errors.New("short answer"))
	}
	return int32(binary.BigEndian.Uint32(body)), body[4:], nil
}

// answered reports whether the agent answered (true) or closed the connection (false); a wait that
// times out (a paused agent) counts as closed.
func (c *hostileConn) answered() bool {
	_, _, err := c.next()
	return err == nil
}

// request encodes req at version as a frame with correlation id corr.
func request(req kmsg.Request, version int16, corr int32) []byte {
	req.SetVersion(version)
	b := binary.BigEndian.AppendUint32(nil, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(req.Key()))
	b = binary.BigEndian.AppendUint16(b, uint16(version))
	b = binary.BigEndian.AppendUint32(b, uint32(corr))
	b = binary.BigEndian.AppendUint16(b, uint16(len(hostileClientID)))
	b = append(b, hostileClientID...)
	if req.IsFlexible() {
		b = append(b, 0)
	}
	b = req.AppendTo(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// idle holds one connection open, sending nothing, and opens it again once the agent closes it (at
// its per-address limit, at once; after --connections-max-idle otherwise).
func (h *Hostile) idle(ctx context.Context, addr string) {
	for {
		if c, err := dialFrom(ctx, addr, h.cfg.IdleFrom); err == nil {
			h.count("idle")
			c.nc.SetReadDeadline(time.Time{})
			_, _ = io.Copy(io.Discard, c.r) // until the agent closes it, or Close
			c.nc.Close()
		}
		if !pause(ctx, hostileRedial) {
			return
		}
	}
}

// partial announces a 4 MiB produce, sends 1 MiB of it and waits for the agent to close the connection
// (--frame-timeout).
func (h *Hostile) partial(ctx context.Context, addr string) {
	head := binary.BigEndian.AppendUint32(nil, 4<<20)
	head = binary.BigEndian.AppendUint16(head, uint16(kmsg.Produce))
	head = binary.BigEndian.AppendUint16(head, 9)
	for pause(ctx, hostilePartial) {
		c, err := dialFrom(ctx, addr, h.cfg.From)
		if err != nil {
			continue
		}
		h.count("partial-frame")
		if c.write(head) == nil && c.write(make([]byte, 1<<20)) == nil && c.answered() {
			h.violation("%s answered a frame cut off halfway", addr)
		}
		c.nc.Close()
	}
}

// longPolls sends 16 pipelined fetches of the quiet topic that ask to wait 2^31-1 ms, padded to 100 KiB
// each with a tagged field, and reads their answers (--fetch-max-wait caps the wait).
func (h *Hostile) longPolls(ctx context.Context, addr string) {
	for pause(ctx, hostilePartial) {
		c, err := dialFrom(ctx, addr, h.cfg.From)
		if err != nil {
			continue
		}
		for i := range int32(16) {
			req := kmsg.NewPtrFetchRequest()
			req.ReplicaID, req.MaxWaitMillis, req.MinBytes, req.MaxBytes = -1, math.MaxInt32, 1<<30, 1<<20
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic = h.cfg.Quiet
			rp := kmsg.NewFetchRequestTopicPartition()
			rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 1<<20, -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			req.UnknownTags.Set(9999, make([]byte, 100<<10))
			if c.write(request(req, 12, i)) != nil {
				break
			}
			h.count("long-poll")
		}
		for range 16 {
			if _, _, err := c.next(); err != nil {
				break
			}
		}
		c.nc.Close()
	}
}

// madeUp produces a batch from a producer id InitProducerID never handed out to the workload topic:
// it must be refused (UNKNOWN_PRODUCER_ID, or NOT_LEADER_OR_FOLLOWER while the partition moves), never
// taken.
func (h *Hostile) madeUp(ctx context.Context, addr string) {
	var c *hostileConn
	defer func() {
		if c != nil {
			c.nc.Close()
		}
	}()
	for corr := int32(0); pause(ctx, hostileMadeUp); corr++ {
		if c == nil {
			var err error
			if c, err = dialFrom(ctx, addr, h.cfg.From); err != nil {
				continue
			}
		}
		pid := int64(1)<<50 + rand.Int64N(1<<40)
		req := kmsg.NewPtrProduceRequest()
		req.Acks, req.TimeoutMillis = -1, 10_000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = h.cfg.Topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Partition, rp.Records = int32(corr%4), madeUpBatch(pid, fmt.Sprintf("hostile/%d", pid))
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		h.count("made-up-producer-id")
		if c.write(request(req, 9, corr)) != nil {
			c.nc.Close()
			c = nil
			continue
		}
		h.checkMadeUp(&c, addr, pid)
	}
}

// checkMadeUp reads a made-up producer id's answer; the connection is dropped on any error.
func (h *Hostile) checkMadeUp(c **hostileConn, addr string, pid int64) {
	_, body, err := (*c).next()
	resp := kmsg.NewPtrProduceResponse()
	resp.SetVersion(9)
	rd := body
	if err == nil && len(rd) > 0 {
		rd = rd[1:] // the flexible header's tags (none)
		err = resp.ReadFrom(rd)
	}
	if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		(*c).nc.Close()
		*c = nil
		return
	}
	if resp.Topics[0].Partitions[0].ErrorCode == 0 {
		h.violation("%s took a batch from made-up producer id %d", addr, pid)
	}
}

// madeUpBatch is a valid record batch of one record from producer pid, epoch 0, sequence 0.
func madeUpBatch(pid int64, value string) []byte {
	b := kmsg.RecordBatch{Magic: 2, ProducerID: pid, FirstSequence: 0, NumRecords: 1,
		FirstTimestamp: time.Now().UnixMilli(), MaxTimestamp: time.Now().UnixMilli()}
	r := kmsg.Record{Value: []byte(value)}
	r.Length = int32(len(r.AppendTo(nil)) - 1)
	b.Records = r.AppendTo(nil)
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	binary.BigEndian.PutUint32(raw[17:], crc32.Checksum(raw[21:], crc32.MakeTable(crc32.Castagnoli)))
	return raw
}

// inflated sends a 3 MiB CreateTopics of 200,000 empty topics (decoding it may take 128 times that,
// more than the agent's whole request budget) and a produce of 400,000 empty partitions: each must be
// refused unanswered.
func (h *Hostile) inflated(ctx context.Context, addr string) {
	topics := kmsg.NewPtrCreateTopicsRequest()
	topics.Topics = make([]kmsg.CreateTopicsRequestTopic, 200_000)
	produce := kmsg.NewPtrProduceRequest()
	produce.Acks, produce.TimeoutMillis = -1, 1000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = h.cfg.Topic
	rt.Partitions = make([]kmsg.ProduceRequestTopicPartition, 400_000)
	produce.Topics = append(produce.Topics, rt)
	frames := [][]byte{request(topics, 4, 1), request(produce, 9, 1)}
	for i := 0; pause(ctx, hostileInflated); i++ {
		c, err := dialFrom(ctx, addr, h.cfg.From)
		if err != nil {
			continue
		}
		h.count("inflated-array")
		_ = c.write(frames[i%2]) // cut short when the agent closes the connection, unread
		if c.answered() {
			h.violation("%s answered an inflated frame (%s)", addr, []string{"CreateTopics", "Produce"}[i%2])
		}
		c.nc.Close()
	}
}
