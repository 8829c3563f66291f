package agent

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/coord"
)

// logStartKey is the etcd key of tp's log start (docs/INTERNALS.md).
func (tc *testCluster) logStartKey(tp coord.TP) string {
	return fmt.Sprintf("%slogstart/%s/%d", tc.prefix, tp.Topic, tp.Partition)
}

// A partition whose log start moved past 0 (retention, DeleteRecords), here into the middle of a
// committed entry, is served from it by an agent that loads it afresh: its log start and high
// watermark are right, a fetch below the log start is out of range, and later commits are seen.
func TestFreshAgentServesLogNotStartingAtZero(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a1 := tc.agent("a1")
	c := ledTopicConn(t, a1, "trimmed")
	for i := range 5 {
		p := c.produceOne("trimmed", 0, valueBatch(-1, -1, -1, nil, values(fmt.Sprint(i), 3)...))
		wantOK(t, "produce", p.ErrorCode)
	}
	tp := topicTP(t, a1, "trimmed", 0)
	if _, err := tc.client().Etcd().Put(testCtx(t), tc.logStartKey(tp), "6"); err != nil {
		t.Fatal(err)
	}
	if err := a1.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	a2 := tc.agent("a2")
	waitFor(t, "a2 to lead the partition", func() bool { return a2.lead.leaders.get(tp) != nil })
	c2 := dialRaw(t, a2)
	earliest := c2.listOffset("trimmed", 0, listEarliest)
	wantOK(t, "list earliest", earliest.ErrorCode)
	if earliest.Offset != 6 || c2.highWatermark("trimmed", 0) != 15 {
		t.Fatalf("log start %d, high watermark %d; want 6, 15", earliest.Offset, c2.highWatermark("trimmed", 0))
	}
	sp := c2.fetchOne("trimmed", 0, 6, 1<<20)
	wantOK(t, "fetch at the log start", sp.ErrorCode)
	if recs := decodeRecords(t, sp); len(recs) != 9 || recs[0].Offset != 6 || string(recs[0].Value) != "2-0" || sp.LogStartOffset != 6 {
		t.Fatalf("fetch at the log start: %v, log start %d", recordValues(recs), sp.LogStartOffset)
	}
	wantCode(t, "fetch below the log start", c2.fetchOne("trimmed", 0, 5, 1<<20).ErrorCode, kerr.OffsetOutOfRange)

	p := c2.produceOne("trimmed", 0, valueBatch(-1, -1, -1, nil, "after"))
	wantOK(t, "produce after the trim", p.ErrorCode)
	if p.BaseOffset != 15 {
		t.Fatalf("produce after the trim at %d, want 15", p.BaseOffset)
	}
	sp = c2.fetchOne("trimmed", 0, 15, 1<<20)
	if recs := decodeRecords(t, sp); len(recs) != 1 || string(recs[0].Value) != "after" || sp.HighWatermark != 16 {
		t.Fatalf("fetch of the commit after the trim: %v, high watermark %d", recordValues(recs), sp.HighWatermark)
	}
}
