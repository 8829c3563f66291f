package agent

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

// producerStates counts the producer states of topic's partition 0 that a leader taking it over now
// would load: the view's, from snapshots and the uncompacted entries.
func producerStates(t *testing.T, a *Agent, topic string) int {
	t.Helper()
	st, _ := a.cache.PartitionState(topicTP(t, a, topic, 0))
	return len(st.Producers)
}

// A batch from a producer id InitProducerID never handed out is refused with UNKNOWN_PRODUCER_ID and
// leaves no producer state behind; one handed out a moment ago, by any agent, is taken. Before, any id
// a client made up created producer state in etcd.
func TestMadeUpProducerIDRefused(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	c := ledTopicConn(t, a, "pids")
	for _, pid := range []int64{0, 999, 1 << 40} {
		p := c.produceOne("pids", 0, valueBatch(pid, 0, 0, nil, "made up"))
		wantCode(t, "made-up producer id", p.ErrorCode, kerr.UnknownProducerID)
	}
	if n := producerStates(t, a, "pids"); n != 0 {
		t.Fatalf("%d producer states after made-up ids", n)
	}
	if n := hits(a, limitUnknownProducerID); n != 3 {
		t.Errorf("unknown_producer_id hits = %v, want 3", n)
	}
	pid, err := tc.client().AllocateProducerID(testCtx(t)) // elsewhere: the view may not have seen it
	if err != nil {
		t.Fatal(err)
	}
	p := c.produceOne("pids", 0, valueBatch(pid, 0, 0, nil, "handed out"))
	wantOK(t, "allocated producer id", p.ErrorCode)
	// The commit is in etcd once the produce is answered; the view sees it a moment later.
	waitFor(t, "the view to hold one producer state", func() bool { return producerStates(t, a, "pids") == 1 })
}

// A partition keeps the state of at most --max-producer-ids-per-partition producers: a new producer
// past it evicts the least recently written one from its leader's memory (a merge's snapshots then
// keep the most recent that many: lifecycle.RecentProducers). The evicted producer's next batch is
// refused (OUT_OF_ORDER_SEQUENCE_NUMBER, as after Kafka's expiry) unless it starts over at sequence
// 0; the others go on.
func TestProducerIDsPerPartitionEvicts(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1", withLimits(func(l *Limits) { l.MaxProducerIDsPerPartition = 2 }))
	c := ledTopicConn(t, a, "evict")
	var pids []int64
	for range 3 {
		pid, err := tc.client().AllocateProducerID(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	wantOK(t, "first", c.produceOne("evict", 0, valueBatch(pids[0], 0, 0, nil, "a")).ErrorCode)
	wantOK(t, "second", c.produceOne("evict", 0, valueBatch(pids[1], 0, 0, nil, "b")).ErrorCode)
	wantOK(t, "first again", c.produceOne("evict", 0, valueBatch(pids[0], 0, 1, nil, "c")).ErrorCode)
	wantOK(t, "third", c.produceOne("evict", 0, valueBatch(pids[2], 0, 0, nil, "d")).ErrorCode) // evicts the second
	wantCode(t, "evicted producer goes on", c.produceOne("evict", 0, valueBatch(pids[1], 0, 1, nil, "e")).ErrorCode,
		kerr.OutOfOrderSequenceNumber)
	wantOK(t, "first goes on", c.produceOne("evict", 0, valueBatch(pids[0], 0, 2, nil, "f")).ErrorCode)
	if n := hits(a, limitProducerIDs); n != 1 {
		t.Errorf("max_producer_ids_per_partition hits = %v, want 1", n)
	}
	checkLog(t, a, "evict", 0, []string{"a", "b", "c", "d", "f"})
}
