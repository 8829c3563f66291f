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
	// Revision is the create revision of topics/<name>, set by whatever read the topic (not
	// stored): it tells this topic from one deleted and created again under its name, and guards
	// Session.AcquireTopic. 0 when unknown.
	Revision int64 `json:"-"`
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
	// Listeners are the advertised addresses of the agent's Kafka listeners by listener name, when it
	// has more than one (or one not named PLAINTEXT); Addr is the first's. A client is told the
	// addresses of the listener it connected to, as Kafka does; an agent without the name is given
	// by Addr.
	Listeners map[string]string `json:"listeners,omitempty"`
	// HTTP is the base URL of the agent's HTTP port as other agents reach it ("http://host:port", or
	// https with TLS), where the console asks peers for their rates; empty: none, or an agent of an
	// earlier version.
	HTTP string `json:"http,omitempty"`
}

// Extent is one contiguous byte range of a segment object: the verbatim batches one produce
// request carried for one partition.
type Extent struct {
	Object string `json:"o"`
	Pos    int64  `json:"p"`
	Len    int32  `json:"l"`
	CRC    uint32 `json:"c"`
}

// IndexEntry says where the batches of offsets [BaseOffset, LastOffset] of one partition live: in
// extents of flush objects (an uncompacted entry, from a commit record or a legacy index key), or in
// one partition segment (Segment set, Extents empty).
type IndexEntry struct {
	BaseOffset int64 `json:"base"`
	LastOffset int64 `json:"last"` // inclusive
	// Epoch is the client-facing leader epoch of the leader that committed the entry (entries of the
	// legacy layout hold the create revision of its leader key). For a segment, the epoch of its
	// last batch; Segment.Epochs says where each epoch begins.
	Epoch        int64    `json:"epoch"`
	MaxTimestamp int64    `json:"maxTs"`
	Bytes        int64    `json:"bytes"`             // sum of extent lengths, or the segment's batch bytes
	Extents      []Extent `json:"extents,omitempty"` // concatenated, they are the batches of [BaseOffset, LastOffset]
	Segment      *Segment `json:"segment,omitempty"` // set for a partition segment
	// Marker is set, in the view, for a transaction marker's entry (one offset, no extents): its
	// control batch is made when served or merged (docs/INTERNALS.md, "Markers").
	Marker *TxnMarker `json:"marker,omitempty"`
}

// Segment locates a partition segment: one object holding one partition's batches, offsets and
// leader epochs written in, with a footer indexing them by block (segstore's partition segment
// format). It is the value of segs/<t>/<p>/<base> together with its IndexEntry.
type Segment struct {
	Object       string       `json:"o"`
	Level        int          `json:"lvl"`
	MinTimestamp int64        `json:"minTs"`
	FooterPos    int64        `json:"fp"`
	FooterLen    int32        `json:"fl"`
	FooterCRC    uint32       `json:"fc"`
	Epochs       []EpochStart `json:"epochs,omitempty"` // the leader epochs that begin in the segment, in order
	// Aborted are the aborted transactions whose abort markers the segment holds, in marker order.
	Aborted []AbortedTxn `json:"aborted,omitempty"`
	Time    int64        `json:"t"` // unix ms when the segment was committed
	// CleanTo and Cleaned are a compacted topic's cleaner state (docs/INTERNALS.md, "Compacted topics"):
	// the offset below which the segment's records are deduplicated against every later record (absent:
	// its base offset, all dirty), and the unix ms at which it became wholly clean (0 while any of it is
	// dirty), from which its tombstones' delete.retention.ms counts.
	CleanTo int64 `json:"ct,omitempty"`
	Cleaned int64 `json:"cl,omitempty"`
	// Tombstones counts the tombstones a clean left in the segment, and the transaction markers it
	// left whose transactions have no record left, so that a clean is due once their
	// delete.retention.ms has passed even without new records.
	Tombstones int64 `json:"tb,omitempty"`
}

// EpochStart is the first offset written under a leader epoch.
type EpochStart struct {
	Epoch  int32 `json:"e"`
	Offset int64 `json:"o"`
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

// ProducerState is an idempotent producer's state on one partition: the value of
// producers/<t>/<p>/<producer id> (a snapshot written by compaction), or rebuilt from the snapshot and
// the commit records after it.
type ProducerState struct {
	ID      int64      `json:"id"`
	Epoch   int16      `json:"epoch"`
	Batches []SeqBatch `json:"batches"` // at most 5, oldest first
	// LastTime is when its last batch was committed (unix ms; 0 in snapshots of the legacy layout):
	// what producer id expiration counts from.
	LastTime int64 `json:"lastTime,omitempty"`
	// MarkerRev is the Prepare revision of the last transaction marker written for the producer on
	// the partition (0: none): a marker sent again for it is answered as written.
	MarkerRev int64 `json:"markerRev,omitempty"`
	// TxnOpen: the producer's transaction has batches on the partition and no marker yet; TxnFirst is
	// the first one's offset (what holds the last stable offset back).
	TxnOpen  bool  `json:"txnOpen,omitempty"`
	TxnFirst int64 `json:"txnFirst,omitempty"`
}

// ProducerBatch is one idempotent batch as a commit record carries it: what a new leader needs to
// rebuild its producer's state.
type ProducerBatch struct {
	ID          int64
	Epoch       int16
	FirstSeq    int32
	LastSeq     int32
	FirstOffset int64
	LastOffset  int64
	// Transactional: the batch is part of its producer's transaction (its records are invisible to
	// read_committed consumers until the transaction's commit marker).
	Transactional bool
}

// Commit is one partition's share of a flush: the index entry its leader sequenced, fenced by the
// create revision of its leader key (Epoch), and the idempotent batches in it.
type Commit struct {
	TP      TP
	Epoch   int64 // fencing epoch: the leader key's create revision
	Entry   IndexEntry
	Batches []ProducerBatch
}
