package coord

import "testing"

// The watched view carries pid/next, the first producer id not yet handed out, from its load and then
// from the watch; NextProducerID reads it from etcd itself.
func TestCacheNextProducerID(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	first, err := c.AllocateProducerID(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	k := runCache(t, c, nil)
	if got := k.NextProducerID(); got != first+1 {
		t.Fatalf("view after load: next producer id %d, want %d", got, first+1)
	}
	second, err := c.AllocateProducerID(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	syncCache(t, k)
	if got := k.NextProducerID(); got != second+1 {
		t.Fatalf("view after watch: next producer id %d, want %d", got, second+1)
	}
	if got, err := c.NextProducerID(testCtx(t)); err != nil || got != second+1 {
		t.Fatalf("NextProducerID = %d, %v; want %d", got, err, second+1)
	}
}

// Before any id is handed out, the next is FirstProducerID.
func TestNextProducerIDFresh(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	k := runCache(t, c, nil)
	if got := k.NextProducerID(); got != FirstProducerID {
		t.Fatalf("view: %d, want %d", got, FirstProducerID)
	}
	if got, err := c.NextProducerID(testCtx(t)); err != nil || got != FirstProducerID {
		t.Fatalf("NextProducerID = %d, %v; want %d", got, err, FirstProducerID)
	}
}

// A commit deletes the producer states it drops, in the same Txn as its entry; a drop of a producer the
// same commit writes is ignored (etcd refuses a Txn naming one key twice).
func TestCommitDropsProducers(t *testing.T) {
	te := newTestEtcd(t)
	c := te.client(t)
	s, tp, epoch := leaderOf(t, c, "drops")
	state := func(id int64) ProducerState {
		return ProducerState{ID: id, Batches: []SeqBatch{{FirstSeq: 0, LastSeq: 0, FirstOffset: 0, LastOffset: 0}}}
	}
	if err := s.Commit(testCtx(t), []Commit{{TP: tp, Epoch: epoch, Entry: entry(0, 1, 10),
		Producers: []ProducerState{state(1), state(2)}}})[0]; err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(testCtx(t), []Commit{{TP: tp, Epoch: epoch, Entry: entry(1, 1, 10),
		Producers: []ProducerState{state(3)}, DropProducers: []int64{1, 3}}})[0]; err != nil {
		t.Fatal(err)
	}
	_, producers, err := c.LoadPartition(testCtx(t), tp)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, p := range producers {
		ids = append(ids, p.ID)
	}
	if len(ids) != 2 || ids[0] != 2 || ids[1] != 3 {
		t.Fatalf("producers after dropping 1 (and 3, written): %v, want [2 3]", ids)
	}
}
