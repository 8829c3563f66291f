package cleaner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Kafka record batch v2 header. baseOffset, batchLength, partitionLeaderEpoch and magic precede the
// CRC, which covers attributes through the end of the batch.
const (
	HeaderLen         = 61
	offBatchLength    = 8
	offMagic          = 16
	offCRC            = 17
	offAttributes     = 21
	offLastDelta      = 23
	offFirstTimestamp = 27
	offProducerID     = 43
	offNumRecords     = 57
	logOverhead       = 12 // baseOffset and batchLength precede the length-counted part

	attrCodec         = 0x07
	attrTransactional = 1 << 4
	attrControl       = 1 << 5
)

// Codecs of a batch's attributes.
const (
	CodecNone   = 0
	CodecGzip   = 1
	CodecSnappy = 2
	CodecLz4    = 3
	CodecZstd   = 4
)

// ErrCorrupt is the error of bytes that are not a well-formed batch or record.
var ErrCorrupt = errors.New("cleaner: corrupt record batch")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Batch is a view of one v2 record batch's header.
type Batch struct {
	Raw             []byte // the whole batch
	BaseOffset      int64
	LastOffsetDelta int32
	Attributes      int16
	FirstTimestamp  int64
	ProducerID      int64
	NumRecords      int32
}

// Codec is the batch's compression codec.
func (b Batch) Codec() int8 { return int8(b.Attributes & attrCodec) }

// Control reports a control batch (transaction markers), which the cleaner never rewrites.
func (b Batch) Control() bool { return b.Attributes&attrControl != 0 }

// Transactional reports a batch of a transaction. Until the cleaner knows which transactions aborted,
// it neither takes their keys into its map nor removes their records (docs/INTERNALS.md, "Compacted
// topics").
func (b Batch) Transactional() bool { return b.Attributes&attrTransactional != 0 }

// LastOffset is the batch's last offset.
func (b Batch) LastOffset() int64 { return b.BaseOffset + int64(b.LastOffsetDelta) }

// Body is the batch's records, compressed as its codec says.
func (b Batch) Body() []byte { return b.Raw[HeaderLen:] }

// ParseBatch reads the batch at the start of data and returns it and its length. The CRC is checked.
func ParseBatch(data []byte) (Batch, int, error) {
	if len(data) < HeaderLen {
		return Batch{}, 0, fmt.Errorf("%w: %d bytes, less than a batch header", ErrCorrupt, len(data))
	}
	n := int64(int32(binary.BigEndian.Uint32(data[offBatchLength:]))) + logOverhead
	if n < HeaderLen || n > int64(len(data)) {
		return Batch{}, 0, fmt.Errorf("%w: batch length %d in %d bytes", ErrCorrupt, n-logOverhead, len(data))
	}
	raw := data[:n]
	if raw[offMagic] != 2 {
		return Batch{}, 0, fmt.Errorf("%w: magic %d", ErrCorrupt, raw[offMagic])
	}
	if crc32.Checksum(raw[offAttributes:], castagnoli) != binary.BigEndian.Uint32(raw[offCRC:]) {
		return Batch{}, 0, fmt.Errorf("%w: CRC mismatch", ErrCorrupt)
	}
	b := Batch{
		Raw:             raw,
		BaseOffset:      int64(binary.BigEndian.Uint64(raw)),
		Attributes:      int16(binary.BigEndian.Uint16(raw[offAttributes:])),
		LastOffsetDelta: int32(binary.BigEndian.Uint32(raw[offLastDelta:])),
		FirstTimestamp:  int64(binary.BigEndian.Uint64(raw[offFirstTimestamp:])),
		ProducerID:      int64(binary.BigEndian.Uint64(raw[offProducerID:])),
		NumRecords:      int32(binary.BigEndian.Uint32(raw[offNumRecords:])),
	}
	if b.LastOffsetDelta < 0 || b.NumRecords < 0 {
		return Batch{}, 0, fmt.Errorf("%w: last offset delta %d, %d records", ErrCorrupt, b.LastOffsetDelta, b.NumRecords)
	}
	return b, int(n), nil
}

// Batches calls fn with each batch of data, a run of whole batches, in order.
func Batches(data []byte, fn func(Batch) error) error {
	for len(data) > 0 {
		b, n, err := ParseBatch(data)
		if err != nil {
			return err
		}
		if err := fn(b); err != nil {
			return err
		}
		data = data[n:]
	}
	return nil
}
