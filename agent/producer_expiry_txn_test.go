package agent

import (
	"testing"
	"time"

	"github.com/streamhouse/streamhouse/coord"
)

// A leader forgets producers idle past the expiration, but never one with an open transaction: its
// marker must find it, and the partition's last stable offset waits on it. The per-partition producer
// limit does not evict it either.
func TestOpenTransactionProducersNotExpired(t *testing.T) {
	t.Parallel()
	now := time.UnixMilli(1_700_000_000_000)
	old := now.Add(-2 * time.Hour).UnixMilli()
	a := &Agent{cfg: Config{ProducerIDExpiration: time.Hour, Limits: Limits{MaxProducerIDsPerPartition: 2}}, metrics: newMetrics(nil)}
	pl := &partitionLeader{producers: map[int64]coord.ProducerState{
		1: {ID: 1, LastTime: old},
		2: {ID: 2, LastTime: old, TxnOpen: true, TxnFirst: 10, Batches: []coord.SeqBatch{{LastOffset: 10}}},
		3: {ID: 3, LastTime: now.UnixMilli(), Batches: []coord.SeqBatch{{LastOffset: 30}}},
	}}
	a.expireProducers(pl, now)
	if _, ok := pl.producers[1]; ok {
		t.Error("an idle producer was kept")
	}
	if _, ok := pl.producers[2]; !ok {
		t.Fatal("an idle producer with an open transaction was forgotten")
	}

	pl.producers[4] = coord.ProducerState{ID: 4, LastTime: now.UnixMilli(), Batches: []coord.SeqBatch{{LastOffset: 20}}}
	pc := &partitionCommit{pl: pl, states: map[int64]coord.ProducerState{5: {ID: 5}}} // a new producer over the limit
	a.makeRoomForProducer(pc)
	if len(pc.evict) != 1 || pc.evict[0] == 2 {
		t.Fatalf("evicted %v to make room, want one producer other than 2 (its transaction is open)", pc.evict)
	}
}
