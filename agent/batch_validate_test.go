package agent

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"runtime"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// A 69-byte batch of one record whose header declares 2^31-1 records (a correct CRC over the lie) is
// refused with INVALID_RECORD and moves no offset: the next batch gets offset 0.
func TestProduceRefusesInflatedRecordCount(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "inflated")
	h := plainSpec(1)
	h.lastDelta, h.numRecords = math.MaxInt32-1, math.MaxInt32
	inflated := buildBatch(h, testRecord(0, 0, []byte{'x'}))
	if len(inflated) != 69 {
		t.Fatalf("the inflated batch is %d bytes, want 69", len(inflated))
	}
	wantCode(t, "inflated batch", c.produceOne("inflated", 0, inflated).ErrorCode, kerr.InvalidRecord)
	if hwm := c.highWatermark("inflated", 0); hwm != 0 {
		t.Fatalf("high watermark %d after a refused batch, want 0", hwm)
	}
	wantOK(t, "next batch", c.produceOne("inflated", 0, valueBatch(-1, -1, -1, nil, "after")).ErrorCode)
	checkLog(t, a, "inflated", 0, []string{"after"})
}

// A compressed batch of 3 records whose header says 5 is refused: the count is checked against the
// records inside the compression, not taken from the header.
func TestProduceRefusesLyingCountInCompressedBatch(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "lying")
	for name, codec := range testCodecs {
		if codec == 0 {
			continue
		}
		h := plainSpec(5)
		h.codec = codec
		lying := buildBatch(h, compressRecords(t, codec, testRecords(3)))
		wantCode(t, name+" batch of 3 records declaring 5", c.produceOne("lying", 0, lying).ErrorCode, kerr.InvalidRecord)
	}
	if hwm := c.highWatermark("lying", 0); hwm != 0 {
		t.Fatalf("high watermark %d after refused batches, want 0", hwm)
	}
}

// Offset deltas must be 0..n-1 in order; a batch whose deltas skip, repeat or run backwards is
// refused even though its header's count matches its records.
func TestProduceRefusesMismatchedOffsetDeltas(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "deltas")
	for name, deltas := range map[string][]int32{
		"skip":      {0, 1, 3},
		"repeat":    {0, 1, 1},
		"backwards": {0, 2, 1},
		"offset":    {1, 2, 3},
	} {
		var recs []byte
		for i, d := range deltas {
			recs = append(recs, testRecord(d, int64(i), []byte{'x'})...)
		}
		wantCode(t, name, c.produceOne("deltas", 0, buildBatch(plainSpec(3), recs)).ErrorCode, kerr.InvalidRecord)
	}
	if hwm := c.highWatermark("deltas", 0); hwm != 0 {
		t.Fatalf("high watermark %d after refused batches, want 0", hwm)
	}
}

// Every codec's batches, as franz-go writes them (and snappy in the Java client's framing too), are
// accepted, with what the sequencer takes derived from the records.
func TestValidateBatchCodecs(t *testing.T) {
	t.Parallel()
	for name, codec := range testCodecs {
		for _, n := range []int{1, 7, 3000} {
			h := plainSpec(n)
			h.codec, h.pid, h.epoch, h.seq = codec, 42, 3, 9
			b := buildBatch(h, compressRecords(t, codec, testRecords(n)))
			m, err := parseProduceBatch(b, DefaultMaxDecompressedBatchBytes)
			if err != nil {
				t.Fatalf("%s batch of %d records: %v", name, n, err)
			}
			want := batchMeta{records: int32(n), maxTimestamp: 1000 + int64(n-1), producerID: 42, producerEpoch: 3, baseSequence: 9}
			if m != want {
				t.Fatalf("%s batch of %d records: meta %+v, want %+v", name, n, m, want)
			}
		}
	}
	for _, chunk := range []int{1, 100, 32 << 10} {
		h := plainSpec(500)
		h.codec = codecSnappy
		if _, err := parseProduceBatch(buildBatch(h, xerialSnappy(testRecords(500), chunk)), DefaultMaxDecompressedBatchBytes); err != nil {
			t.Fatalf("xerial snappy in chunks of %d: %v", chunk, err)
		}
	}
}

// The max timestamp is the records' own: a header that says otherwise (sarama's rounding makes it
// differ by a millisecond) is not refused, and the index gets the true value.
func TestValidateBatchDerivesMaxTimestamp(t *testing.T) {
	t.Parallel()
	recs := append(append(testRecord(0, 5, nil), testRecord(1, -3, nil)...), testRecord(2, 2, nil)...)
	h := plainSpec(3)
	h.maxTS = 999_999
	m, err := parseProduceBatch(buildBatch(h, recs), DefaultMaxDecompressedBatchBytes)
	if err != nil {
		t.Fatal(err)
	}
	if m.maxTimestamp != 1005 {
		t.Fatalf("max timestamp %d, want 1005 (first timestamp 1000 + the largest delta)", m.maxTimestamp)
	}
}

// Each way a batch can lie or be malformed, with the sentinel (and so the Kafka code) it is refused
// with, for an uncompressed batch and, where the lie is in the records, inside each codec.
func TestValidateBatchRefusals(t *testing.T) {
	t.Parallel()
	one := testRecord(0, 0, []byte("x"))
	withRecords := func(recs []byte, n int) func(int8) []byte {
		return func(codec int8) []byte {
			h := plainSpec(n)
			h.codec = codec
			return buildBatch(h, compressRecords(t, codec, recs))
		}
	}
	header := func(edit func(*batchSpec)) func(int8) []byte {
		return func(codec int8) []byte {
			h := plainSpec(2)
			edit(&h)
			h.codec = codec
			return buildBatch(h, compressRecords(t, codec, testRecords(2)))
		}
	}
	cases := map[string]struct {
		batch func(codec int8) []byte
		want  error
	}{
		"fewer records than declared": {withRecords(testRecords(2), 3), errBatchInvalid},
		"more records than declared":  {withRecords(testRecords(3), 2), errBatchInvalid},
		"bytes after the last record": {withRecords(append(testRecords(2), 0), 2), errBatchInvalid},
		"no records":                  {header(func(h *batchSpec) { h.lastDelta, h.numRecords = -1, 0 }), errBatchInvalid},
		"negative count":              {header(func(h *batchSpec) { h.lastDelta, h.numRecords = -3, -2 }), errBatchInvalid},
		"last delta not count-1":      {header(func(h *batchSpec) { h.lastDelta = 5 }), errBatchInvalid},
		"idempotent, no sequence":     {header(func(h *batchSpec) { h.pid, h.epoch, h.seq = 5, 0, -1 }), errBatchInvalid},
		"record length too long":      {withRecords(append([]byte{0x10}, one[1:]...), 1), errBatchInvalid},
		"record length too short":     {withRecords(append([]byte{0x02}, one[1:]...), 1), errBatchInvalid},
		"negative record length":      {withRecords(append([]byte{0x01}, one[1:]...), 1), errBatchInvalid},
		"key past the record":         {withRecords([]byte{0x0c, 0, 0, 0, 0x7e, 0, 0, 0}, 1), errBatchInvalid},
		"key length -2":               {withRecords([]byte{0x0a, 0, 0, 0, 0x03, 0x01, 0}, 1), errBatchInvalid},
		"negative header count":       {withRecords([]byte{0x0a, 0, 0, 0, 0x01, 0x01, 0x01}, 1), errBatchInvalid},
		"header count past the record": {withRecords([]byte{0x0a, 0, 0, 0, 0x01, 0x01, 0xfe, 0xff, 0xff, 0xff, 0x0f}, 1),
			errBatchInvalid},
		"null header key":    {withRecords([]byte{0x0e, 0, 0, 0, 0x01, 0x01, 0x02, 0x01, 0x01}, 1), errBatchInvalid},
		"varint of 6 bytes":  {withRecords([]byte{0x0e, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, 1), errBatchInvalid},
		"truncated record":   {withRecords(one[:len(one)-1], 1), errBatchInvalid},
		"timestamp overflow": {withRecords(testRecord(0, math.MaxInt64, nil), 1), errBatchTimestamp},
	}
	for name, tc := range cases {
		for cname, codec := range testCodecs {
			if _, err := parseProduceBatch(tc.batch(codec), DefaultMaxDecompressedBatchBytes); !errors.Is(err, tc.want) {
				t.Errorf("%s (%s): got %v, want %v", name, cname, err, tc.want)
			}
		}
	}
}

// The batch's own framing, and what is wrong with its compression, whatever the records.
func TestValidateBatchCorrupt(t *testing.T) {
	t.Parallel()
	recs := testRecords(20)
	for name, tc := range map[string]struct {
		codec int8
		body  []byte
		want  error
	}{
		"unknown codec 5":         {5, recs, errBatchCorrupt},
		"gzip garbage":            {codecGzip, []byte("not gzip at all"), errBatchCorrupt},
		"gzip empty":              {codecGzip, nil, errBatchCorrupt},
		"gzip truncated":          {codecGzip, truncate(compressRecords(t, codecGzip, recs), 5), errBatchCorrupt},
		"gzip checksum":           {codecGzip, flipTail(compressRecords(t, codecGzip, recs), 6), errBatchCorrupt},
		"lz4 garbage":             {codecLz4, []byte("not lz4 at all"), errBatchCorrupt},
		"lz4 truncated":           {codecLz4, truncate(compressRecords(t, codecLz4, recs), 3), errBatchCorrupt},
		"zstd garbage":            {codecZstd, []byte("not zstd at all"), errBatchCorrupt},
		"zstd truncated":          {codecZstd, truncate(compressRecords(t, codecZstd, recs), 3), errBatchCorrupt},
		"snappy garbage":          {codecSnappy, []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2}, errBatchTooLarge},
		"snappy claims too much":  {codecSnappy, []byte{0x80, 0x80, 0x04, 0, 0, 0, 0}, errBatchCorrupt},
		"snappy bad block":        {codecSnappy, []byte{0x10, 0xff, 0xff}, errBatchCorrupt},
		"xerial truncated block":  {codecSnappy, truncate(xerialSnappy(recs, 64), 1), errBatchCorrupt},
		"xerial short length":     {codecSnappy, append(xerialSnappy(recs, 1<<10), 0, 0), errBatchCorrupt},
		"xerial claims too much":  {codecSnappy, append(xerialMagicHeader(), 0, 0, 0, 4, 0x80, 0x80, 0x04, 0), errBatchCorrupt},
		"xerial header only":      {codecSnappy, xerialMagicHeader(), errBatchInvalid},
		"xerial trailing garbage": {codecSnappy, append(xerialSnappy(recs, 1<<10), 0, 0, 0, 1, 0xff), errBatchCorrupt},
	} {
		h := plainSpec(20)
		h.codec = tc.codec
		if _, err := parseProduceBatch(buildBatch(h, tc.body), DefaultMaxDecompressedBatchBytes); !errors.Is(err, tc.want) {
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

func xerialMagicHeader() []byte { return xerialSnappy(nil, 1) }

// A zip bomb, a batch that decompresses far past the limit, is refused with MESSAGE_TOO_LARGE
// (errBatchTooLarge) after at most the limit's worth of decompression, and without allocating what it
// decompresses to: the allocation stays a fraction of the 64 MiB, whatever the codec.
func TestValidateBatchRefusesZipBomb(t *testing.T) {
	const bomb, limit = 64 << 20, 1 << 20
	zeros := testRecord(0, 0, make([]byte, bomb))
	bodies := map[string][]byte{"xerial": xerialSnappy(zeros, 32<<10)}
	for name, codec := range testCodecs {
		if codec != codecNone {
			bodies[name] = compressRecords(t, codec, zeros)
		}
	}
	for name, body := range bodies {
		h := plainSpec(1)
		h.codec = testCodecs[name]
		if name == "xerial" {
			h.codec = codecSnappy
		}
		b := buildBatch(h, body)
		_, _ = parseProduceBatch(b, limit) // warm the decoder pool, as a running agent's is
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := parseProduceBatch(b, limit)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, errBatchTooLarge) {
			t.Errorf("%s bomb of %d compressed bytes: got %v, want %v", name, len(body), err, errBatchTooLarge)
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
		if _, err := parseProduceBatch(b, DefaultMaxDecompressedBatchBytes); err != nil {
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
	for _, codec := range testCodecs {
		f.Add(codecBatch(f, codec, 3))
	}
	f.Add(buildBatch(plainSpec(2), xerialSnappy(testRecords(2), 8)))
	f.Add(testBatch(1, 5, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzValidate(t, data)
		if len(data) >= batchHeaderLen {
			fixed := bytes.Clone(data)
			binary.BigEndian.PutUint32(fixed[offBatchLength:], uint32(len(fixed)-batchLogOverhead))
			binary.BigEndian.PutUint32(fixed[offCRC:], crc32Of(fixed[offAttributes:]))
			fuzzValidate(t, fixed)
		}
	})
}

func fuzzValidate(t *testing.T, data []byte) {
	m, err := parseProduceBatch(data, 1<<20)
	if err != nil {
		if kafkaCode(err) == kerr.KafkaStorageError.Code {
			t.Fatalf("refused without a batch error: %v", err)
		}
		return
	}
	if n := int32(binary.BigEndian.Uint32(data[offNumRecords:])); m.records <= 0 || m.records != n {
		t.Fatalf("accepted %d records, header says %d", m.records, n)
	}
	if _, _, err := patchBatches(nil, data, 0, 0, 0); err != nil {
		t.Fatalf("accepted a batch the fetch path cannot serve: %v", err)
	}
}

// Through a running agent: a batch past --max-decompressed-batch-bytes is MESSAGE_TOO_LARGE and
// counted; a zstd batch in a Produce before v7 is UNSUPPORTED_COMPRESSION_TYPE, as in Kafka.
func TestProduceDecompressionLimitAndZstdVersion(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", func(c *Config) { c.MaxDecompressedBatchBytes = 64 << 10 })
	c := ledTopicConn(t, a, "limits")
	h := plainSpec(1)
	h.codec = codecGzip
	bomb := buildBatch(h, compressRecords(t, codecGzip, testRecord(0, 0, make([]byte, 1<<20))))
	wantCode(t, "gzip batch of 1 MiB over a 64 KiB limit", c.produceOne("limits", 0, bomb).ErrorCode, kerr.MessageTooLarge)
	if got := metricValue(t, a, "streamhouse_batch_decompress_limit_total"); got != 1 {
		t.Fatalf("streamhouse_batch_decompress_limit_total = %v, want 1", got)
	}
	zstd := codecBatch(t, codecZstd, 2)
	p := producePart(t, c.roundTrip(produceReq("limits", -1, map[int32][]byte{0: zstd}), 6))
	wantCode(t, "zstd in Produce v6", p.ErrorCode, kerr.UnsupportedCompressionType)
	wantOK(t, "zstd in Produce v7", producePart(t, c.roundTrip(produceReq("limits", -1, map[int32][]byte{0: zstd}), 7)).ErrorCode)
	if hwm := c.highWatermark("limits", 0); hwm != 2 {
		t.Fatalf("high watermark %d, want 2 (the v7 batch only)", hwm)
	}
}
