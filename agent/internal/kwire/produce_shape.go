package kwire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Decoding a request allocates each array from its declared length, and an element's struct (or the
// map of its unknown tagged fields) is much larger than its encoding: a frame can make the decoder
// allocate many times its size. A Produce frame, the one request that is legitimately large, is
// therefore walked before it is decoded (ProduceShape, which allocates nothing) and refused when its
// decoded structures would outweigh it by more than produceDecodeFactor; every other request is
// charged DecodeExpansion times its size (see FrameCharge).
const (
	// DecodeExpansion bounds what decoding allocates per frame byte for any request but Produce:
	// measured at most 96 (an array of small elements each carrying one unknown tagged field, whose
	// map is the cost; TestDecodeWithinCharge), rounded up.
	DecodeExpansion = 128
	// produceDecodeFactor bounds a Produce's decoded structures relative to its frame, beyond
	// produceDecodeSlack (the request itself and a few topics and partitions, whatever their batches). A
	// legitimate produce of many topics, each carrying one small batch, comes to about 1.25.
	produceDecodeFactor = 1.5
	produceDecodeSlack  = 4 << 10
	// TagMapBytes is what decoding the first unknown tagged field of an element costs (its map), and
	// TagEntryBytes each further one.
	TagMapBytes   = 320
	TagEntryBytes = 64
)

var errShape = errors.New("malformed produce request")

// shapeReader reads the fields ProduceShape needs; a read past the end sets bad.
type shapeReader struct {
	b   []byte
	bad bool
}

func (r *shapeReader) skip(n int) {
	if n < 0 || n > len(r.b) {
		r.bad, r.b = true, nil
		return
	}
	r.b = r.b[n:]
}

func (r *shapeReader) int16() int16 {
	if len(r.b) < 2 {
		r.skip(2)
		return 0
	}
	v := int16(binary.BigEndian.Uint16(r.b))
	r.b = r.b[2:]
	return v
}

func (r *shapeReader) int32() int32 {
	if len(r.b) < 4 {
		r.skip(4)
		return 0
	}
	v := int32(binary.BigEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

func (r *shapeReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.bad, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

// length reads an array, string or bytes length: int16 or int32 (wide) before flexible versions, a
// compact uvarint (length+1, 0 for null) from them. Null is -1.
func (r *shapeReader) length(flexible, wide bool) int {
	switch {
	case flexible:
		v := r.uvarint()
		if v > uint64(len(r.b))+1 {
			r.bad, r.b = true, nil
			return 0
		}
		return int(v) - 1
	case wide:
		return int(r.int32())
	default:
		return int(r.int16())
	}
}

// tags skips a tagged-field section and returns what decoding it allocates.
func (r *shapeReader) tags() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.bad, r.b = true, nil
		return 0
	}
	cost := 0
	for i := uint64(0); i < n && !r.bad; i++ {
		r.uvarint() // key
		r.skip(int(min(r.uvarint(), uint64(len(r.b))+1)))
		cost += TagEntryBytes
	}
	if n > 0 {
		cost += TagMapBytes
	}
	return cost
}

// ProduceShape walks a Produce frame (header included) without decoding it and returns how many bytes
// decoding it would allocate. It fails on a frame that ends early; what it does not check, the decoder
// does.
func ProduceShape(body []byte, version int16) (int, error) {
	flexible := version >= 9
	r := &shapeReader{b: body}
	r.skip(8)                      // key, version, correlation id
	r.skip(max(int(r.int16()), 0)) // client id
	cost := 0
	if flexible {
		cost += r.tags()
	}
	if version >= 3 {
		n := r.length(flexible, false) // transactional id
		r.skip(max(n, 0))
		cost += max(n, 0)
	}
	r.skip(6) // acks, timeout
	topics := r.length(flexible, true)
	cost += max(topics, 0) * int(unsafe.Sizeof(kmsg.ProduceRequestTopic{}))
	for t := 0; t < topics && !r.bad; t++ {
		name := r.length(flexible, false)
		r.skip(max(name, 0))
		cost += max(name, 0)
		parts := r.length(flexible, true)
		cost += max(parts, 0) * int(unsafe.Sizeof(kmsg.ProduceRequestTopicPartition{}))
		for p := 0; p < parts && !r.bad; p++ {
			r.skip(4)
			r.skip(max(r.length(flexible, true), 0)) // records
			if flexible {
				cost += r.tags()
			}
		}
		if flexible {
			cost += r.tags()
		}
	}
	if flexible {
		cost += r.tags()
	}
	if r.bad {
		return 0, fmt.Errorf("%w: it ends early", errShape)
	}
	return cost, nil
}

// FrameCharge is what a frame of n bytes of API key is charged to the request budget while it is read
// and decoded: its bytes and what decoding it may allocate.
func FrameCharge(key int16, n int32) int64 {
	if key == int16(kmsg.Produce) {
		return int64(n) + ProduceDecodeBound(int(n))
	}
	return int64(n) * DecodeExpansion
}

// ProduceDecodeBound is what decoding a Produce frame of n bytes may allocate.
func ProduceDecodeBound(n int) int64 {
	return int64(float64(n)*produceDecodeFactor) + produceDecodeSlack
}
