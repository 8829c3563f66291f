package agent

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/agent/internal/cleaner"
	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

// A topic's compression.type says how its batches are stored, as in Kafka: "producer" (the default)
// stores each batch as the producer compressed it; a codec ("uncompressed", "gzip", "snappy", "lz4",
// "zstd") has the agent that receives a batch in another codec compress its records again with that
// codec, at the topic's compression.<codec>.level (docs/INTERNALS.md, "Topic configs"). The records'
// bytes, the batch's offsets, timestamps and producer fields stay; its length, attributes and CRC are
// written anew. A batch already in the topic's codec is stored untouched, so a batch forwarded by an
// in-zone agent is recompressed once, by the agent the producer sent it to.

// compressionCodecs are compression.type's codec values and the batch codecs they name.
var compressionCodecs = map[string]int8{
	"uncompressed": cleaner.CodecNone,
	"gzip":         cleaner.CodecGzip,
	"snappy":       cleaner.CodecSnappy,
	"lz4":          cleaner.CodecLz4,
	"zstd":         cleaner.CodecZstd,
}

// compressionLevelConfigs are the level configs of the codecs that have levels.
var compressionLevelConfigs = map[int8]string{
	cleaner.CodecGzip: "compression.gzip.level",
	cleaner.CodecLz4:  "compression.lz4.level",
	cleaner.CodecZstd: "compression.zstd.level",
}

// parseCompressionType is Kafka's validation of compression.type: one of its values, in any case.
func parseCompressionType(v string) (string, error) {
	v = strings.ToLower(v)
	if _, ok := compressionCodecs[v]; ok || v == "producer" {
		return v, nil
	}
	return "", fmt.Errorf("must be one of producer, uncompressed, gzip, snappy, lz4, zstd")
}

// applyCompressionType returns batch (validated, not yet written) in the codec t's compression.type
// names, and whether it is new bytes (then no longer a slice of the request's frame). A batch too
// large after recompression for t's max.message.bytes is refused with MESSAGE_TOO_LARGE, as Kafka
// checks the size again after its broker recompresses.
func (a *Agent) applyCompressionType(t coord.Topic, batch []byte) ([]byte, bool, error) {
	codec, ok := compressionCodecs[t.Configs[configCompressionType]]
	if !ok || kwire.Codec(batch) == codec {
		return batch, false, nil
	}
	b, _, err := cleaner.ParseBatch(batch)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", kwire.ErrBatchCorrupt, err)
	}
	level := cleaner.LevelDefault
	name := compressionLevelConfigs[codec]
	v, ok := t.Configs[name]
	if !ok {
		v = topicConfigDefs[name].def // Kafka's default level, as DescribeConfigs shows it
	}
	if n, err := strconv.Atoi(v); err == nil {
		level = n
	}
	out, err := cleaner.Recompress(b, codec, level, a.cfg.MaxDecompressedBatchBytes)
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", kwire.ErrBatchCorrupt, err)
	}
	a.metrics.recompressed.WithLabelValues("in").Add(float64(len(batch)))
	a.metrics.recompressed.WithLabelValues("out").Add(float64(len(out)))
	if len(out) > int(topicMaxMessageBytes(t)) {
		return nil, false, kerr.MessageTooLarge
	}
	return out, true, nil
}

func newRecompressedMetric() *prometheus.CounterVec {
	m := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "streamhouse_produce_recompressed_bytes_total",
		Help: "Bytes of produced batches compressed again for their topic's compression.type, by direction: in (as produced), out (as stored).",
	}, []string{"direction"})
	m.WithLabelValues("in")
	m.WithLabelValues("out")
	return m
}
