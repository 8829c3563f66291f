package agent

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
)

// inflate fills every array of v (a request struct) with n default elements, each carrying tags unknown
// tagged fields where the version has them: the shape of a frame that makes the decoder allocate the
// most for its size.
func inflate(v reflect.Value, n, tags int) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Field(i)
		switch {
		case !f.CanSet():
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() != reflect.Uint8 && n > 0:
			s := reflect.MakeSlice(f.Type(), n, n)
			for j := range n {
				e := s.Index(j)
				if d, ok := e.Addr().Interface().(interface{ Default() }); ok {
					d.Default()
				}
				if e.Kind() == reflect.Struct {
					inflate(e, 0, tags)
				}
			}
			f.Set(s)
		case f.Type() == reflect.TypeOf(kmsg.Tags{}):
			t := f.Addr().Interface().(*kmsg.Tags)
			for k := range tags {
				t.Set(uint32(100+k), nil)
			}
		}
	}
}

// decodeAlloc is what decoding body as a request of key and version allocates: the least of two
// decodings, since the counter is the process's and other goroutines only add to it.
func decodeAlloc(key, version int16, body []byte) uint64 {
	least := uint64(math.MaxUint64)
	for range 2 {
		req := kmsg.RequestForKey(key)
		req.SetVersion(version)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_ = req.ReadFrom(body)
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(req)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

// Decoding any request the agent serves, at any version, allocates no more than it is charged: for a
// Produce that kwire.ProduceShape accepts, its bound; for any other, kwire.DecodeExpansion times its size. The
// frames are the worst kind: arrays of minimal elements, with and without an unknown tagged field each.
// Not parallel: it reads the process's allocation counter.
func TestDecodeWithinCharge(t *testing.T) {
	worst, worstAt := 0.0, ""
	for key, r := range apis {
		for v := r.min; v <= r.max; v++ {
			for _, tags := range []int{0, 1} { // one tag costs an element a map; more add less each
				req := kmsg.RequestForKey(key)
				req.SetVersion(v)
				if tags > 0 && !req.IsFlexible() {
					continue
				}
				inflate(reflect.ValueOf(req).Elem(), 20000, tags)
				body := req.AppendTo(nil)
				if len(body) < 64<<10 {
					continue // no arrays to inflate: the request's fixed size, not a ratio
				}
				got := decodeAlloc(key, v, body)
				name := kmsg.NameForKey(key)
				if key == int16(kmsg.Produce) {
					frame := frameOf(req, v, 1)[4:]
					if cost, err := kwire.ProduceShape(frame, v); err == nil && cost <= int(kwire.ProduceDecodeBound(len(frame))) &&
						got > uint64(kwire.ProduceDecodeBound(len(frame))) {
						t.Errorf("%s v%d, %d tags: shape accepted, decoding took %d bytes for %d", name, v, tags, got, len(frame))
					}
					continue
				}
				ratio := float64(got) / float64(len(body))
				if ratio > worst {
					worst, worstAt = ratio, fmt.Sprintf("%s v%d, %d tags an element", name, v, tags)
				}
				if ratio > kwire.DecodeExpansion {
					t.Errorf("%s v%d, %d tags an element: decoding %d bytes allocated %d (%.0fx), over kwire.DecodeExpansion %d",
						name, v, tags, len(body), got, ratio, kwire.DecodeExpansion)
				}
			}
		}
	}
	t.Logf("worst decode expansion: %.1fx (%s)", worst, worstAt)
}

// kwire.ProduceShape refuses a produce of many empty partitions or topics (whose decoded structs outweigh the
// frame) and accepts real ones, at every version.
func TestProduceShape(t *testing.T) {
	t.Parallel()
	batch := valueBatch(-1, -1, -1, nil, "v")
	for v := int16(0); v <= 11; v++ {
		real := produceReq("t", -1, map[int32][]byte{0: batch, 1: batch, 2: batch})
		body := frameOf(real, v, 1)[4:]
		if cost, err := kwire.ProduceShape(body, v); err != nil || int64(cost) > kwire.ProduceDecodeBound(len(body)) {
			t.Errorf("v%d: a real produce: cost %d, %v", v, cost, err)
		}
		inflated := kmsg.NewPtrProduceRequest()
		inflate(reflect.ValueOf(inflated).Elem(), 50000, 0)
		body = frameOf(inflated, v, 1)[4:]
		if cost, err := kwire.ProduceShape(body, v); err != nil || int64(cost) <= kwire.ProduceDecodeBound(len(body)) {
			t.Errorf("v%d: 50,000 empty topics in %d bytes: cost %d, %v; want over the bound", v, len(body), cost, err)
		}
		if _, err := kwire.ProduceShape(body[:len(body)/2], v); err == nil {
			t.Errorf("v%d: a truncated produce passed", v)
		}
	}
}

// Frames that would take more to decode than they may are refused before they are decoded, and the
// connection closed: a request other than Produce larger than the budget over kwire.DecodeExpansion (it is
// not even read), and a produce of thousands of empty partitions.
func TestInflatedFramesRefused(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.MaxRequestBytes, c.QueuedMaxRequestBytes = 1<<20, 8<<20 })
	big := kmsg.NewPtrCreateTopicsRequest()
	inflate(reflect.ValueOf(big).Elem(), 50000, 0) // 800 KB; might take 100 MiB to decode
	c := dialRaw(t, a)
	c.writeRefused(frameOf(big, 4, 1)) // refused unread: the close may cut the write short
	c.expectClosed()

	empty := kmsg.NewPtrProduceRequest()
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "t"
	rt.Partitions = make([]kmsg.ProduceRequestTopicPartition, 50000)
	empty.Topics = append(empty.Topics, rt)
	c = dialRaw(t, a)
	c.writeRefused(frameOf(empty, 9, 1))
	c.expectClosed()
	if n := hits(a, limitDecodeBound); n != 2 {
		t.Errorf("decode_bound hits = %v, want 2", n)
	}
	dialRaw(t, a).roundTrip(kmsg.NewPtrMetadataRequest(), 12)
}
