package kwire

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// testBatch builds a valid v2 batch of n records, as a producer would.
func testBatch(n int, producerID int64, epoch int16, seq int32) []byte {
	b := kmsg.RecordBatch{
		Magic:           2,
		LastOffsetDelta: int32(n - 1),
		FirstTimestamp:  1000,
		MaxTimestamp:    1000 + int64(n-1),
		ProducerID:      producerID,
		ProducerEpoch:   epoch,
		FirstSequence:   seq,
		NumRecords:      int32(n),
	}
	var recs []byte
	for i := range n {
		r := kmsg.Record{OffsetDelta: int32(i), TimestampDelta64: int64(i), Value: []byte{byte(i)}}
		r.Length = int32(len(r.AppendTo(nil)) - 1)
		recs = r.AppendTo(recs)
	}
	b.Records = recs
	raw := b.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[offBatchLength:], uint32(len(raw)-batchLogOverhead))
	binary.BigEndian.PutUint32(raw[offCRC:], crc32Of(raw[offAttributes:]))
	return raw
}

func TestParseProduceBatch(t *testing.T) {
	good := testBatch(3, 7, 1, 10)
	m, err := ParseProduceBatch(good, testDecompressLimit)
	if err != nil {
		t.Fatal(err)
	}
	if m.Records != 3 || m.ProducerID != 7 || m.ProducerEpoch != 1 || m.BaseSequence != 10 || m.LastSequence() != 12 || m.MaxTimestamp != 1002 {
		t.Fatalf("meta %+v", m)
	}
	flip := func(off int) []byte {
		b := append([]byte(nil), good...)
		b[off] ^= 0xff
		return b
	}
	for name, tc := range map[string]struct {
		b    []byte
		want error
	}{
		"empty":     {nil, ErrBatchCorrupt},
		"short":     {good[:40], ErrBatchCorrupt},
		"magic":     {flip(offMagic), ErrBatchMagic},
		"crc":       {flip(len(good) - 1), ErrBatchCorrupt},
		"truncated": {good[:len(good)-1], ErrBatchCorrupt},
		"two":       {append(append([]byte(nil), good...), good...), ErrBatchCount},
		"length":    {flip(offBatchLength), ErrBatchCorrupt},
		"count":     {flip(offNumRecords + 3), ErrBatchCorrupt},
	} {
		if _, err := ParseProduceBatch(tc.b, testDecompressLimit); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func TestPatchBatches(t *testing.T) {
	a, b := testBatch(2, -1, -1, -1), testBatch(3, -1, -1, -1)
	src := append(append([]byte(nil), a...), b...)
	out, next, err := PatchBatches(nil, src, 100, 9, 0)
	if err != nil || next != 105 {
		t.Fatalf("next %d, err %v", next, err)
	}
	if got := int64(binary.BigEndian.Uint64(out[len(a):])); got != 102 {
		t.Fatalf("second batch base %d, want 102", got)
	}
	if got := int32(binary.BigEndian.Uint32(out[offLeaderEpoch:])); got != 9 {
		t.Fatalf("leader epoch %d, want 9", got)
	}
	// The CRC still holds: patched fields lie outside it.
	if _, err := ParseProduceBatch(out[:len(a)], testDecompressLimit); err != nil {
		t.Fatalf("patched batch no longer valid: %v", err)
	}
	// Fetching from offset 103 skips the first batch.
	out, _, _ = PatchBatches(nil, src, 100, 9, 103)
	if len(out) != len(b) {
		t.Fatalf("skip: %d bytes, want %d", len(out), len(b))
	}
	if _, _, err := PatchBatches(nil, src[:len(src)-1], 0, 0, 0); !errors.Is(err, ErrBatchCorrupt) {
		t.Fatalf("truncated extent: %v", err)
	}
}

func FuzzPatchBatches(f *testing.F) {
	f.Add(testBatch(2, -1, -1, -1))
	f.Add(append(testBatch(1, 5, 0, 0), testBatch(4, 5, 0, 1)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, _ = PatchBatches(nil, data, 0, 1, 0)
		_, _ = ParseProduceBatch(data, testDecompressLimit)
	})
}

// A batch's stored CRC, derived from its own, is the CRC of all of its bytes.
func TestStoredCRC(t *testing.T) {
	for _, values := range [][]string{{"a"}, {"hello", "kafka"}, kwiretest.Values("v", 100)} {
		b := kwiretest.ValueBatch(7, 1, 0, nil, values...)
		if _, err := ParseProduceBatch(b, testDecompressLimit); err != nil {
			t.Fatal(err)
		}
		if got, want := StoredCRC(b), crc32Of(b); got != want {
			t.Fatalf("StoredCRC of a %d-byte batch = %08x, want %08x", len(b), got, want)
		}
	}
}

// testDecompressLimit is the agent's default --max-decompressed-batch-bytes.
const testDecompressLimit = 64 << 20
