package segstore

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

// keyGen makes the ULIDs of object keys. The clock is read under the same lock as the entropy: read
// outside it, a goroutine holding an older millisecond could reset the monotonic entropy between
// two keys of another goroutine and break their order.
var keyGen = struct {
	sync.Mutex
	entropy *ulid.MonotonicEntropy
	lastMs  uint64
}{
	// crypto/rand seeds each millisecond, so that an agent restarted under the same id does not
	// replay its predecessor's sequence.
	entropy: ulid.Monotonic(rand.Reader, 0),
}

// objectPrefix starts every segment object's key.
const objectPrefix = "seg/"

// NewObjectKey returns a fresh unique key "seg/<ULID>-<agentID>". Keys made by one process never
// repeat and sort in the order they were made; the agent id keeps two agents' keys apart.
func NewObjectKey(agentID string) string {
	return objectPrefix + newULID().String() + "-" + agentID
}

// NewPartKey returns a fresh unique key for a partition segment of topicID's partition,
// "part/<topic id, 32 hex digits>/<partition>/<ULID>-<agentID>", ordered and unique as
// NewObjectKey's; a partition's segments share the prefix "part/<topic id>/<partition>/".
func NewPartKey(topicID [16]byte, partition int32, agentID string) string {
	return "part/" + hex.EncodeToString(topicID[:]) + "/" + strconv.FormatInt(int64(partition), 10) + "/" +
		newULID().String() + "-" + agentID
}

// ObjectTime returns when the object under key was named: the time of the ULID in a key that
// NewObjectKey or NewPartKey made (the writer's clock, to the millisecond), which ages objects for
// GC. It reports false for any other key.
func ObjectTime(key string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(key, "seg/")
	if !ok {
		if rest, ok = cutPartPrefix(key); !ok {
			return time.Time{}, false
		}
	}
	if len(rest) <= ulid.EncodedSize || rest[ulid.EncodedSize] != '-' {
		return time.Time{}, false
	}
	id, err := ulid.ParseStrict(rest[:ulid.EncodedSize])
	if err != nil {
		return time.Time{}, false
	}
	return ulid.Time(id.Time()), true
}

// cutPartPrefix removes "part/<topic id>/<partition>/" from key, as NewPartKey spells them.
func cutPartPrefix(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, "part/")
	topic, rest, ok1 := strings.Cut(rest, "/")
	partition, rest, ok2 := strings.Cut(rest, "/")
	if !ok || !ok1 || !ok2 || len(topic) != 32 || strings.ToLower(topic) != topic {
		return "", false
	}
	if _, err := hex.DecodeString(topic); err != nil {
		return "", false
	}
	if p, err := strconv.ParseInt(partition, 10, 32); err != nil || strconv.FormatInt(p, 10) != partition {
		return "", false
	}
	return rest, true
}

func newULID() ulid.ULID {
	keyGen.Lock()
	defer keyGen.Unlock()
	ms := max(ulid.Now(), keyGen.lastMs) // a clock stepping back does not break the order
	for {
		id, err := ulid.New(ms, keyGen.entropy)
		if err == nil {
			keyGen.lastMs = ms
			return id
		}
		if !errors.Is(err, ulid.ErrMonotonicOverflow) {
			// crypto/rand does not fail, and ms is a real clock reading.
			panic(fmt.Sprintf("segstore: ulid: %v", err))
		}
		// 80 bits of entropy exhausted within one millisecond (never in practice): borrow the
		// next millisecond, which keeps keys unique and ordered.
		ms++
	}
}

// ObjectAgent is the id of the agent that made key with NewObjectKey, and whether key has that shape
// ("seg/", 26 characters of ULID, "-", a non-empty id).
func ObjectAgent(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, objectPrefix)
	if !ok || len(rest) < ulid.EncodedSize+2 || rest[ulid.EncodedSize] != '-' {
		return "", false
	}
	if u, err := ulid.ParseStrict(rest[:ulid.EncodedSize]); err != nil || u.String() != rest[:ulid.EncodedSize] {
		return "", false // not as NewObjectKey writes it (Crockford's base32 parses lower case too)
	}
	return rest[ulid.EncodedSize+1:], true
}
