package segstore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"

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
