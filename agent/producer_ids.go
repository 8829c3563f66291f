package agent

import (
	"context"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// Producer ids are handed out densely from etcd's pid/next by InitProducerID, so an id at or above it
// was never handed out: a client made it up, and its batches would create producer state (etcd keys,
// leader memory) without limit. They are refused with UNKNOWN_PRODUCER_ID before they are buffered.

// pidReadTimeout bounds the etcd read of pid/next behind a producer id the view has not seen.
const pidReadTimeout = 5 * time.Second

// producerIDs tells producer ids InitProducerID handed out from made-up ones. The watched view
// carries pid/next; an id at or above it is checked against etcd itself, since another agent may have
// handed it out a moment ago. One read at a time: concurrent checks share it.
type producerIDs struct {
	view func() int64                         // pid/next as the watched view has it
	read func(context.Context) (int64, error) // pid/next from etcd

	mu      sync.Mutex
	next    int64         // the highest pid/next read from etcd
	reading chan struct{} // closed when the read in flight ends; nil when none is
}

// allocated reports whether id was handed out. It waits for a read of etcd that began after it was
// called when neither the view nor an earlier read has seen id.
func (p *producerIDs) allocated(ctx context.Context, id int64) (bool, error) {
	if id < coord.FirstProducerID {
		return false, nil
	}
	for range 2 { // a read already in flight may have begun before the id was handed out
		if p.known(id) {
			return true, nil
		}
		led, err := p.refresh(ctx)
		if err != nil {
			return false, err
		}
		if led {
			break
		}
	}
	return p.known(id), nil
}

func (p *producerIDs) known(id int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return id < max(p.next, p.view())
}

// refresh reads pid/next, or waits for the read in flight; led tells whether this call made the read.
func (p *producerIDs) refresh(ctx context.Context) (led bool, err error) {
	p.mu.Lock()
	if running := p.reading; running != nil {
		p.mu.Unlock()
		select {
		case <-running:
			return false, nil
		case <-ctx.Done():
			return false, ctx.Err()
		}
	}
	done := make(chan struct{})
	p.reading = done
	p.mu.Unlock()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pidReadTimeout)
	n, err := p.read(rctx)
	cancel()
	p.mu.Lock()
	if err == nil && n > p.next {
		p.next = n
	}
	p.reading = nil
	p.mu.Unlock()
	close(done)
	return true, err
}

// checkProducerID refuses a batch whose producer id was never handed out. -1 is a producer without
// one; any other id must have come from InitProducerID.
func (a *Agent) checkProducerID(ctx context.Context, id int64) error {
	if id == -1 {
		return nil
	}
	ok, err := a.pids.allocated(ctx, id)
	if err != nil {
		return errStorage // etcd did not answer: the client retries
	}
	if !ok {
		a.limitHit(limitUnknownProducerID)
		return kerr.UnknownProducerID
	}
	return nil
}

// A partition keeps the state of at most --max-producer-ids-per-partition idempotent producers, in
// etcd and in its leader's memory. A new producer past that evicts the one whose last batch is the
// oldest, in the commit that adds the new one, as Kafka expires producer state after
// producer.id.expiration.ms: the evicted producer's next batch is refused (OUT_OF_ORDER_SEQUENCE_NUMBER)
// unless it starts a new sequence, and its retries are no longer deduplicated.

// makeRoomForProducer evicts, when pc's partition would otherwise pass its limit with one producer
// more, the least recently written producer the commit does not write.
func (a *Agent) makeRoomForProducer(pc *partitionCommit) {
	pl := pc.pl
	n := len(pl.producers) - len(pc.evict) + 1 // the new one
	for id := range pc.states {
		if _, old := pl.producers[id]; !old || pc.evicted(id) {
			n++
		}
	}
	if n <= a.cfg.MaxProducerIDsPerPartition {
		return
	}
	victim, oldest := int64(-1), int64(0)
	for id, st := range pl.producers {
		if _, writing := pc.states[id]; writing || pc.evicted(id) || st.TxnOpen {
			continue // (an open transaction's producer stays: its marker closes it, and the LSO waits on it)
		}
		last := int64(-1)
		if k := len(st.Batches); k > 0 {
			last = st.Batches[k-1].LastOffset
		}
		if victim < 0 || last < oldest {
			victim, oldest = id, last
		}
	}
	if victim >= 0 {
		pc.evict = append(pc.evict, victim)
		a.limitHit(limitProducerIDs)
	}
}

func (pc *partitionCommit) evicted(id int64) bool {
	for _, e := range pc.evict {
		if e == id {
			return true
		}
	}
	return false
}
