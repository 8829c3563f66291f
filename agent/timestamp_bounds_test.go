package agent

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
)

// TestTimestampBounds produces to topics with message.timestamp.before.max.ms and after.max.ms: a
// batch with a record too old or too far ahead is refused with INVALID_TIMESTAMP naming that record;
// records within the bounds, and any record of a topic without bounds, are written.
func TestTimestampBounds(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createTopic(t, cl, "bounded", 1, map[string]*string{"message.timestamp.before.max.ms": sp("3600000"),
		"message.timestamp.after.max.ms": sp("60000")})
	createTopic(t, cl, "free", 1, nil)
	c := dialRaw(t, a)
	now := time.Now().UnixMilli()
	for _, tc := range []struct {
		what  string
		ts    []int64
		code  *kerr.Error
		index int32
	}{
		{"now", []int64{now, now + 1}, nil, 0},
		{"an hour and more ago", []int64{now, now - 2*3600_000}, kerr.InvalidTimestamp, 1},
		{"an hour ahead", []int64{now + 3600_000, now}, kerr.InvalidTimestamp, 0},
	} {
		r := c.produceOne("bounded", 0, valueBatch(-1, -1, -1, tc.ts, "a", "b"))
		checkCode(t, tc.what, r.ErrorCode, tc.code)
		if tc.code != nil && (len(r.ErrorRecords) != 1 || r.ErrorRecords[0].RelativeOffset != tc.index) {
			t.Errorf("%s: record errors %+v, want record %d", tc.what, r.ErrorRecords, tc.index)
		}
		if r := c.produceOne("free", 0, valueBatch(-1, -1, -1, tc.ts, "a", "b")); r.ErrorCode != 0 {
			t.Errorf("%s: to a topic without bounds: error %d", tc.what, r.ErrorCode)
		}
	}
}
