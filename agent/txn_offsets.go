package agent

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/streamhouse/streamhouse/coord"
)

// errGroupNotCoordinated: a group whose coordinator shard no live agent leads now; the transaction
// coordinator tries again.
var errGroupNotCoordinated = errors.New("agent: a transaction's group has no coordinator now")

// resolveGroups has the coordinator of each of m's groups apply the transaction's end to the
// producer's pending offsets there.
func (a *Agent) resolveGroups(ctx context.Context, guard coord.TxnGuard, marker coord.TxnMarker, groups []string) error {
	errs := make([]error, len(groups))
	var wg sync.WaitGroup
	for i, name := range groups {
		wg.Go(func() {
			w := &markerWork{guard: guard, marker: marker, group: name, errs: make([]error, 1)}
			tp, ok := a.txnShard(name) // a group hashes to its shard as a transactional id does
			if !ok {
				errs[i] = fmt.Errorf("%w: %q", errGroupNotCoordinated, name)
				return
			}
			switch leader, ok := a.markerLeader(tp); {
			case !ok:
				errs[i] = fmt.Errorf("%w: %q", errGroupNotCoordinated, name)
			case leader == a.cfg.ID:
				errs[i] = a.resolveGroup(ctx, w)
			default:
				errs[i] = a.writeRemoteMarkers(ctx, leader, w)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// resolveGroup applies w's transaction end to its group, which this agent coordinates.
func (a *Agent) resolveGroup(ctx context.Context, w *markerWork) error {
	return a.groups.ResolveTxn(ctx, w.group, w.guard, w.marker.ProducerID, w.marker.Commit)
}
