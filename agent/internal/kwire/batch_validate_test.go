package kwire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"

	"github.com/streamhouse/streamhouse/agent/internal/kwire/kwiretest"
)

// Every codec's batches, as franz-go writes them (and snappy in the Java client's framing too), are
// accepted, with what the sequencer takes derived from the records.
func TestValidateBatchCodecs(t *testing.T) {
	t.Parallel()
	for name, codec := range kwiretest.Codecs {
		for _, n := range []int{1, 7, 3000} {
			h := kwiretest.PlainSpec(n)
			h.Codec, h.Pid, h.Epoch, h.Seq = codec, 42, 3, 9
			b := kwiretest.Build(h, kwiretest.Compress(t, codec, kwiretest.Records(n)))
			m, err := ParseProduceBatch(b, testDecompressLimit)
			if err != nil {
				t.Fatalf("%s batch of %d records: %v", name, n, err)
			}
			want := BatchMeta{Records: int32(n), MaxTimestamp: 1000 + int64(n-1), ProducerID: 42, ProducerEpoch: 3, BaseSequence: 9}
			if m != want {
				t.Fatalf("%s batch of %d records: meta %+v, want %+v", name, n, m, want)
			}
		}
	}
	for _, chunk := range []int{1, 100, 32 << 10} {
		h := kwiretest.PlainSpec(500)
		h.Codec = CodecSnappy
		if _, err := ParseProduceBatch(kwiretest.Build(h, kwiretest.XerialSnappy(kwiretest.Records(500), chunk)), testDecompressLimit); err != nil {
			t.Fatalf("xerial snappy in chunks of %d: %v", chunk, err)
		}
	}
}

// The max timestamp is the records' own: a header that says otherwise (sarama's rounding makes it
// differ by a millisecond) is not refused, and the index gets the true value.
func TestValidateBatchDerivesMaxTimestamp(t *testing.T) {
	t.Parallel()
	recs := append(append(kwiretest.Record(0, 5, nil), kwiretest.Record(1, -3, nil)...), kwiretest.Record(2, 2, nil)...)
	h := kwiretest.PlainSpec(3)
	h.MaxTS = 999_999
	m, err := ParseProduceBatch(kwiretest.Build(h, recs), testDecompressLimit)
	if err != nil {
		t.Fatal(err)
	}
	if m.MaxTimestamp != 1005 {
		t.Fatalf("max timestamp %d, want 1005 (first timestamp 1000 + the largest delta)", m.MaxTimestamp)
	}
}

// Each way a batch can lie or be malformed, with the sentinel (and so the Kafka code) it is refused
// with, for an uncompressed batch and, where the lie is in the records, inside each codec.
func TestValidateBatchRefusals(t *testing.T) {
	t.Parallel()
	one := kwiretest.Record(0, 0, []byte("x"))
	withRecords := func(recs []byte, n int) func(int8) []byte {
		return func(codec int8) []byte {
			h := kwiretest.PlainSpec(n)
			h.Codec = codec
			return kwiretest.Build(h, kwiretest.Compress(t, codec, recs))
		}
	}
	header := func(edit func(*kwiretest.Spec)) func(int8) []byte {
		return func(codec int8) []byte {
			h := kwiretest.PlainSpec(2)
			edit(&h)
			h.Codec = codec
			return kwiretest.Build(h, kwiretest.Compress(t, codec, kwiretest.Records(2)))
		}
	}
	cases := map[string]struct {
		batch func(codec int8) []byte
		want  error
	}{
		"fewer records than declared": {withRecords(kwiretest.Records(2), 3), ErrBatchInvalid},
		"more records than declared":  {withRecords(kwiretest.Records(3), 2), ErrBatchInvalid},
		"bytes after the last record": {withRecords(append(kwiretest.Records(2), 0), 2), ErrBatchInvalid},
		"no records":                  {header(func(h *kwiretest.Spec) { h.LastDelta, h.NumRecords = -1, 0 }), ErrBatchInvalid},
		"negative count":              {header(func(h *kwiretest.Spec) { h.LastDelta, h.NumRecords = -3, -2 }), ErrBatchInvalid},
		"last delta not count-1":      {header(func(h *kwiretest.Spec) { h.LastDelta = 5 }), ErrBatchInvalid},
		"idempotent, no sequence":     {header(func(h *kwiretest.Spec) { h.Pid, h.Epoch, h.Seq = 5, 0, -1 }), ErrBatchInvalid},
		"record length too long":      {withRecords(append([]byte{0x10}, one[1:]...), 1), ErrBatchInvalid},
		"record length too short":     {withRecords(append([]byte{0x02}, one[1:]...), 1), ErrBatchInvalid},
		"negative record length":      {withRecords(append([]byte{0x01}, one[1:]...), 1), ErrBatchInvalid},
		"key past the record":         {withRecords([]byte{0x0c, 0, 0, 0, 0x7e, 0, 0, 0}, 1), ErrBatchInvalid},
		"key length -2":               {withRecords([]byte{0x0a, 0, 0, 0, 0x03, 0x01, 0}, 1), ErrBatchInvalid},
		"negative header count":       {withRecords([]byte{0x0a, 0, 0, 0, 0x01, 0x01, 0x01}, 1), ErrBatchInvalid},
		"header count past the record": {withRecords([]byte{0x0a, 0, 0, 0, 0x01, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x0f}, 1),
			ErrBatchInvalid},
		"null header key":    {withRecords([]byte{0x0e, 0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01}, 1), ErrBatchInvalid},
		"varint of 6 bytes":  {withRecords([]byte{0x0e, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 1), ErrBatchInvalid},
		"truncated record":   {withRecords(one[:len(one)-1], 1), ErrBatchInvalid},
		"timestamp overflow": {withRecords(kwiretest.Record(0, math.MaxInt64, nil), 1), ErrBatchTimestamp},
	}
	for name, tc := range cases {
		for cname, codec := range kwiretest.Codecs {
			if _, err := ParseProduceBatch(tc.batch(codec), testDecompressLimit); !errors.Is(err, tc.want) {
				t.Errorf("%s (%s): got %v, want %v", name, cname, err, tc.want)
			}
		}
	}
}

// The batch's own framing, and what is wrong with its compression, whatever the records.
func TestValidateBatchCorrupt(t *testing.T) {
	t.Parallel()
	recs := kwiretest.Records(20)
	for name, tc := range map[string]struct {
		codec int8
		body  []byte
		want  error
	}{
		"unknown codec 5":         {5, recs, ErrBatchCorrupt},
		"gzip garbage":            {CodecGzip, []byte("not gzip at all"), ErrBatchCorrupt},
		"gzip empty":              {CodecGzip, nil, ErrBatchCorrupt},
		"gzip truncated":          {CodecGzip, truncate(kwiretest.Compress(t, CodecGzip, recs), 5), ErrBatchCorrupt},
		"gzip checksum":           {CodecGzip, flipTail(kwiretest.Compress(t, CodecGzip, recs), 6), ErrBatchCorrupt},
		"lz4 garbage":             {CodecLz4, []byte("not lz4 at all"), ErrBatchCorrupt},
		"lz4 truncated":           {CodecLz4, truncate(kwiretest.Compress(t, CodecLz4, recs), 3), ErrBatchCorrupt},
		"zstd garbage":            {CodecZstd, []byte("not zstd at all"), ErrBatchCorrupt},
		"zstd truncated":          {CodecZstd, truncate(kwiretest.Compress(t, CodecZstd, recs), 3), ErrBatchCorrupt},
		"snappy garbage":          {CodecSnappy, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}, ErrBatchTooLarge},
		"snappy claims too much":  {CodecSnappy, []byte{0x80, 0x80, 0x04, 0, 0, 0, 0}, ErrBatchCorrupt},
		"snappy bad block":        {CodecSnappy, []byte{0x10, 0xff, 0xff}, ErrBatchCorrupt},
		"xerial truncated block":  {CodecSnappy, truncate(kwiretest.XerialSnappy(recs, 64), 1), ErrBatchCorrupt},
		"xerial short length":     {CodecSnappy, append(kwiretest.XerialSnappy(recs, 1<<10), 0, 0), ErrBatchCorrupt},
		"xerial claims too much":  {CodecSnappy, append(xerialMagicHeader(), 0, 0, 0, 4, 0x80, 0x80, 0x04, 0), ErrBatchCorrupt},
		"xerial header only":      {CodecSnappy, xerialMagicHeader(), ErrBatchInvalid},
		"xerial trailing garbage": {CodecSnappy, append(kwiretest.XerialSnappy(recs, 1<<10), 0, 0, 0, 1, 0xff), ErrBatchCorrupt},
	} {
		h := kwiretest.PlainSpec(20)
		h.Codec = tc.codec
		if _, err := ParseProduceBatch(kwiretest.Build(h, tc.body), testDecompressLimit); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func truncate(b []byte, n int) []byte { return bytes.Clone(b[:len(b)-n]) }

func flipTail(b []byte, n int) []byte {
	b = bytes.Clone(b)
	b[len(b)-n] ^= 0xff
	return b
}

func xerialMagicHeader() []byte { return kwiretest.XerialSnappy(nil, 1) }

// A zip bomb, a batch that decompresses far past the limit, is refused with MESSAGE_TOO_LARGE
// (ErrBatchTooLarge) after at most the limit's worth of decompression, and without allocating what it
// decompresses to: the allocation stays a fraction of the 64 MiB, whatever the codec.
func TestValidateBatchRefusesZipBomb(t *testing.T) {
	const bomb, limit = 64 << 20, 1 << 20
	zeros := kwiretest.Record(0, 0, make([]byte, bomb))
	bodies := map[string][]byte{"xerial": kwiretest.XerialSnappy(zeros, 32<<10)}
	for name, codec := range kwiretest.Codecs {
		if codec != CodecNone {
			bodies[name] = kwiretest.Compress(t, codec, zeros)
		}
	}
	for name, body := range bodies {
		h := kwiretest.PlainSpec(1)
		h.Codec = kwiretest.Codecs[name]
		if name == "xerial" {
			h.Codec = CodecSnappy
		}
		b := kwiretest.Build(h, body)
		_, _ = ParseProduceBatch(b, limit) // warm the decoder pool, as a running agent's is
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := ParseProduceBatch(b, limit)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrBatchTooLarge) {
			t.Errorf("%s bomb of %d compressed bytes: got %v, want %v", name, len(body), err, ErrBatchTooLarge)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 12<<20 {
			t.Errorf("%s bomb: refusing it allocated %d bytes", name, alloc)
		}
	}
}

// An uncompressed batch is validated without allocating.
func TestValidateBatchDoesNotAllocate(t *testing.T) {
	b := testBatch(100, 7, 0, 0)
	if n := testing.AllocsPerRun(100, func() {
		if _, err := ParseProduceBatch(b, testDecompressLimit); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("%v allocations per validation, want 0", n)
	}
}

// FuzzValidateBatch drives the batch validator with what a client may send: it must not panic,
// must refuse with a batch error (a Kafka code the client understands), and whatever it accepts must
// agree with its header and be servable by the fetch path. Each input is tried as it is and with its
// length and CRC made right, so that mutations reach the records rather than die at the CRC.
func FuzzValidateBatch(f *testing.F) {
	for _, codec := range kwiretest.Codecs {
		f.Add(kwiretest.CodecBatch(f, codec, 3))
	}
	f.Add(kwiretest.Build(kwiretest.PlainSpec(2), kwiretest.XerialSnappy(kwiretest.Records(2), 8)))
	f.Add(testBatch(1, 5, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzValidate(t, data)
		if len(data) >= BatchHeaderLen {
			fixed := bytes.Clone(data)
			binary.BigEndian.PutUint32(fixed[offBatchLength:], uint32(len(fixed)-batchLogOverhead))
			binary.BigEndian.PutUint32(fixed[offCRC:], crc32Of(fixed[offAttributes:]))
			fuzzValidate(t, fixed)
		}
	})
}

func fuzzValidate(t *testing.T, data []byte) {
	m, err := ParseProduceBatch(data, 1<<20)
	if err != nil {
		if !isBatchError(err) {
			t.Fatalf("refused without a batch error: %v", err)
		}
		return
	}
	if n := int32(binary.BigEndian.Uint32(data[offNumRecords:])); m.Records <= 0 || m.Records != n {
		t.Fatalf("accepted %d records, header says %d", m.Records, n)
	}
	if _, _, err := PatchBatches(nil, data, 0, 0, 0); err != nil {
		t.Fatalf("accepted a batch the fetch path cannot serve: %v", err)
	}
}

// isBatchError reports whether err is one of the refusals the agent maps to a Kafka code.
func isBatchError(err error) bool {
	for _, want := range []error{ErrBatchCorrupt, ErrBatchInvalid, ErrBatchTimestamp, ErrBatchTooLarge, ErrBatchMagic, ErrBatchCount, ErrBatchTransactional, ErrBatchControl} {
		if errors.Is(err, want) {
			return true
		}
	}
	return false
}
