package coord

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"
)

// TopicID is a topic's random identity. Keys carry it in hex so that a deleted and re-created
// topic of the same name never sees the old topic's index.
type TopicID [16]byte

// NewTopicID returns a random, non-zero topic id.
func NewTopicID() TopicID {
	var id TopicID
	for id.IsZero() {
		_, _ = rand.Read(id[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	}
	return id
}

func (id TopicID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is unset.
func (id TopicID) IsZero() bool { return id == TopicID{} }

// MarshalText makes JSON carry the id as a hex string.
func (id TopicID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the hex form written by MarshalText.
func (id *TopicID) UnmarshalText(b []byte) error {
	p, err := ParseTopicID(string(b))
	if err != nil {
		return err
	}
	*id = p
	return nil
}

// ParseTopicID parses the 32 hex digits of a topic id.
func ParseTopicID(s string) (TopicID, error) {
	var id TopicID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("coord: topic id %q: want %d hex digits", s, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("coord: topic id %q: %w", s, err)
	}
	return id, nil
}

// TP names one partition of one topic.
type TP struct {
	Topic     TopicID
	Partition int32
}

func (tp TP) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// Topic is the value of topics/<name>.
type Topic struct {
	Name       string            `json:"name"`
	ID         TopicID           `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

// TP returns the topic's partition p.
func (t Topic) TP(p int32) TP { return TP{Topic: t.ID, Partition: p} }

// AgentInfo is the value of agents/<id>.
type AgentInfo struct {
	ID      string    `json:"id"`
	Addr    string    `json:"addr"`
	AZ      string    `json:"az"`
	Group   string    `json:"group"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// Internal is the agent's internal listener, where other agents have it sequence (empty: none, an
	// agent of an earlier version or one run without it: it is not forwarded to).
	Internal string `json:"internal,omitempty"`
}

// Extent is one contiguous byte range of a segment object: the verbatim batches one produce
// request carried for one partition.
type Extent struct {
	Object string `json:"o"`
	Pos    int64  `json:"p"`
	Len    int32  `json:"l"`
	CRC    uint32 `json:"c"`
}

// IndexEntry is the value of index/<t>/<p>/<base>: where the batches of offsets
// [BaseOffset, LastOffset] live.
type IndexEntry struct {
	BaseOffset   int64    `json:"base"`
	LastOffset   int64    `json:"last"`  // inclusive
	Epoch        int64    `json:"epoch"` // leader epoch that committed it
	MaxTimestamp int64    `json:"maxTs"`
	Bytes        int64    `json:"bytes"`   // sum of extent lengths
	Extents      []Extent `json:"extents"` // concatenated, they are the batches of [BaseOffset, LastOffset]
}

// Contains reports whether offset o lies in the entry.
func (e IndexEntry) Contains(o int64) bool { return e.BaseOffset <= o && o <= e.LastOffset }

// SeqBatch records the sequence numbers and offsets of one idempotent producer batch.
type SeqBatch struct {
	FirstSeq    int32 `json:"firstSeq"`
	LastSeq     int32 `json:"lastSeq"`
	FirstOffset int64 `json:"firstOffset"`
	LastOffset  int64 `json:"lastOffset"`
}

// ProducerState is the value of producers/<t>/<p>/<producer id>.
type ProducerState struct {
	ID      int64      `json:"id"`
	Epoch   int16      `json:"epoch"`
	Batches []SeqBatch `json:"batches"` // at most 5, oldest first
}

// Commit is one partition's share of a flush: the index entry the leader sequenced at Epoch and
// the producer states that go with it.
type Commit struct {
	TP        TP
	Epoch     int64
	Entry     IndexEntry
	Producers []ProducerState
}
