package segstore

import (
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/oklog/ulid/v2"
)

// keyEntropy is shared by all goroutines: monotonic within a millisecond, so keys made by one process
// never repeat and sort in creation order; crypto/rand seeds each millisecond so that an agent
// restarted under the same id does not replay its predecessor's sequence.
var keyEntropy = &ulid.LockedMonotonicReader{MonotonicReader: ulid.Monotonic(rand.Reader, 0)}

// NewObjectKey returns a fresh unique key "seg/<ULID>-<agentID>". The agent id keeps two agents'
// keys apart even if their ULIDs collided; the ULID keeps one agent's writes apart.
func NewObjectKey(agentID string) string {
	return "seg/" + newULID().String() + "-" + agentID
}

func newULID() ulid.ULID {
	ms := ulid.Now()
	for {
		id, err := ulid.New(ms, keyEntropy)
		if err == nil {
			return id
		}
		if !errors.Is(err, ulid.ErrMonotonicOverflow) {
			// crypto/rand does not fail, and ms is a real clock reading.
			panic(fmt.Sprintf("segstore: ulid: %v", err))
		}
		// 80 bits of entropy exhausted within one millisecond (never in practice): borrow the
		// next millisecond, which keeps keys unique.
		ms++
	}
}
