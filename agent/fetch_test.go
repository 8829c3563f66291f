package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamhouse/streamhouse/segstore"
)

// A fetch waiting at the log end is woken by the commit that advances the partition: it answers
// with the new records long before its MaxWait.
func TestFetchLongPollWakesOnCommit(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "poll", 1, nil)

	// Without data, a fetch waits its MaxWait and answers empty.
	c := dialRaw(t, a)
	resp := c.roundTrip(fetchReq("poll", 20, 1, 1<<20, fetchPart{0, 0, 1 << 20}), fetchVersion).(*kmsg.FetchResponse)
	if sp := resp.Topics[0].Partitions[0]; sp.ErrorCode != 0 || len(sp.RecordBatches) != 0 || sp.HighWatermark != 0 {
		t.Fatalf("empty fetch: %s, %d bytes, hwm %d", errName(sp.ErrorCode), len(sp.RecordBatches), sp.HighWatermark)
	}

	const maxWait = 30_000
	corr := c.send(fetchReq("poll", maxWait, 1, 1<<20, fetchPart{0, 0, 1 << 20}), fetchVersion)
	type result struct {
		resp *kmsg.FetchResponse
		corr int32
		err  error
	}
	got := make(chan result, 1)
	go func() {
		r := kmsg.NewPtrFetchResponse()
		r.Version = fetchVersion
		corr, err := c.recvErr(r)
		got <- result{r, corr, err}
	}()
	waitFor(t, "the fetch to wait at the log end", func() bool { return goroutinesIn("(*Agent).handleFetch", "waitAny") == 1 })

	p := dialRaw(t, a).produceOne("poll", 0, valueBatch(-1, -1, -1, nil, "wake"))
	wantOK(t, "produce", p.ErrorCode)
	r := waitChan(t, "the long-polling fetch to return (before its 30 s MaxWait)", got)
	if r.err != nil || r.corr != corr {
		t.Fatalf("long-poll answer: corr %d (want %d), %v", r.corr, corr, r.err)
	}
	sp := r.resp.Topics[0].Partitions[0]
	wantOK(t, "long-poll fetch", sp.ErrorCode)
	if recs := decodeRecords(t, sp); len(recs) != 1 || string(recs[0].Value) != "wake" || recs[0].Offset != 0 {
		t.Fatalf("long-poll fetch returned %v", recordValues(recs))
	}
}

// PartitionMaxBytes and MaxBytes bound what a fetch returns, whole batches only, except that the
// first batch is returned even when larger (KIP-74), so that a consumer always progresses.
func TestFetchHonoursByteLimits(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "limits", 2, nil)
	c := dialRaw(t, a)
	for i := range 3 {
		p := c.produceOne("limits", 0, valueBatch(-1, -1, -1, nil, values(string(rune('a'+i)), 4)...))
		wantOK(t, "produce", p.ErrorCode)
	}
	wantOK(t, "produce", c.produceOne("limits", 1, valueBatch(-1, -1, -1, nil, "p1")).ErrorCode)

	all := batchStarts(t, c.fetchOne("limits", 0, 0, 1<<20).RecordBatches)
	if len(all) != 3 || all[0][0] != 0 || all[1][0] != 4 || all[2][0] != 8 {
		t.Fatalf("batches (base, len) %v, want bases 0, 4, 8", all)
	}
	size := int32(all[0][1])
	for _, tt := range []struct {
		name      string
		partMax   int32
		wantBases []int64
	}{
		{"one and a half batches", size + size/2, []int64{0}},
		{"exactly two batches", 2 * size, []int64{0, 4}},
		{"one byte: the first batch anyway", 1, []int64{0}},
	} {
		got := batchStarts(t, c.fetchOne("limits", 0, 0, tt.partMax).RecordBatches)
		if len(got) != len(tt.wantBases) {
			t.Fatalf("%s: %d batches, want %d", tt.name, len(got), len(tt.wantBases))
		}
		for i, b := range got {
			if b[0] != tt.wantBases[i] {
				t.Fatalf("%s: batch %d at base %d, want %d", tt.name, i, b[0], tt.wantBases[i])
			}
		}
	}
	// From the middle of the log.
	if got := batchStarts(t, c.fetchOne("limits", 0, 5, size).RecordBatches); len(got) != 1 || got[0][0] != 4 {
		t.Fatalf("fetch from offset 5: batches %v, want the one at base 4", got)
	}

	// MaxBytes is the whole response's budget: the first partition gets its first batch even past it,
	// the second nothing (without an error).
	for _, tt := range []struct {
		name            string
		maxBytes        int32
		want0, want1    int
		wantHWM0, hwmP1 int64
	}{
		{"one byte", 1, 1, 0, 12, 1},
		{"two batches", 2 * size, 2, 0, 12, 1},
		{"everything", 1 << 20, 3, 1, 12, 1},
	} {
		resp := c.roundTrip(fetchReq("limits", 0, 1, tt.maxBytes, fetchPart{0, 0, 1 << 20}, fetchPart{1, 0, 1 << 20}), fetchVersion).(*kmsg.FetchResponse)
		parts := resp.Topics[0].Partitions
		for i, want := range []int{tt.want0, tt.want1} {
			wantOK(t, tt.name, parts[i].ErrorCode)
			if got := len(batchStarts(t, parts[i].RecordBatches)); got != want {
				t.Fatalf("MaxBytes %s: partition %d got %d batches, want %d", tt.name, i, got, want)
			}
		}
		if parts[0].HighWatermark != tt.wantHWM0 || parts[1].HighWatermark != tt.hwmP1 {
			t.Fatalf("MaxBytes %s: high watermarks %d, %d", tt.name, parts[0].HighWatermark, parts[1].HighWatermark)
		}
	}
}

// A fetch past the high watermark (or before the log start) is OFFSET_OUT_OF_RANGE; at the high
// watermark it is an empty answer.
func TestFetchOffsetOutOfRange(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "range", 1, nil)
	c := dialRaw(t, a)
	wantOK(t, "produce", c.produceOne("range", 0, valueBatch(-1, -1, -1, nil, "r-0", "r-1")).ErrorCode)
	for _, tt := range []struct {
		offset int64
		want   *kerr.Error
	}{{3, kerr.OffsetOutOfRange}, {1 << 40, kerr.OffsetOutOfRange}, {-1, kerr.OffsetOutOfRange}} {
		sp := c.fetchOne("range", 0, tt.offset, 1<<20)
		wantCode(t, "fetch out of range", sp.ErrorCode, tt.want)
		if sp.HighWatermark != 2 {
			t.Fatalf("out-of-range answer carries high watermark %d, want 2", sp.HighWatermark)
		}
	}
	sp := c.fetchOne("range", 0, 2, 1<<20)
	wantOK(t, "fetch at the high watermark", sp.ErrorCode)
	if len(sp.RecordBatches) != 0 {
		t.Fatalf("fetch at the high watermark returned %d bytes", len(sp.RecordBatches))
	}
}

// ListOffsets: earliest, latest, by timestamp (the first offset whose record is at least that
// late), and -3 (the record with the largest timestamp).
func TestListOffsets(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "times", 1, nil)
	c := dialRaw(t, a)
	for _, ts := range []int64{listEarliest, listLatest, listMaxTimestamp, 0} {
		lo := c.listOffset("times", 0, ts)
		wantOK(t, "list offsets on an empty partition", lo.ErrorCode)
		want := int64(0)
		if ts >= 0 || ts == listMaxTimestamp {
			want = -1 // no record
		}
		if lo.Offset != want {
			t.Fatalf("empty partition, timestamp %d: offset %d, want %d", ts, lo.Offset, want)
		}
	}

	// Offsets 0-2 at 100, 200, 300; offsets 3-4 at 400, 350 (timestamps need not grow).
	wantOK(t, "produce", c.produceOne("times", 0, valueBatch(-1, -1, -1, []int64{100, 200, 300}, "t0", "t1", "t2")).ErrorCode)
	wantOK(t, "produce", c.produceOne("times", 0, valueBatch(-1, -1, -1, []int64{400, 350}, "t3", "t4")).ErrorCode)
	for _, tt := range []struct {
		ts, offset, foundTS int64
	}{
		{listEarliest, 0, -1},
		{listLatest, 5, -1},
		{listMaxTimestamp, 3, 400},
		{0, 0, 100},
		{100, 0, 100},
		{101, 1, 200},
		{250, 2, 300},
		{301, 3, 400},
		{360, 3, 400},
		{401, -1, -1},
	} {
		lo := c.listOffset("times", 0, tt.ts)
		wantOK(t, "list offsets", lo.ErrorCode)
		if lo.Offset != tt.offset || lo.Timestamp != tt.foundTS {
			t.Fatalf("timestamp %d: offset %d at %d, want offset %d at %d", tt.ts, lo.Offset, lo.Timestamp, tt.offset, tt.foundTS)
		}
	}
	lo := c.listOffset("times", 1, listLatest)
	wantCode(t, "list offsets of a missing partition", lo.ErrorCode, kerr.UnknownTopicOrPartition)
}

// Answers go out in request order, but one that is ready goes out at once: a produce acknowledgement
// is not held back while a long-polling fetch pipelined behind it on the same connection (as
// librdkafka does, with one connection per broker) waits for data.
func TestProduceAckNotHeldBehindLongPoll(t *testing.T) {
	tc := newTestCluster(t)
	a := tc.agent("a1")
	cl := kgoClient(t, nil, a)
	createLedTopic(t, cl, a, "pipelined", 2, nil)

	entered, release := make(chan struct{}), newGate(t)
	tc.store.SetFault(segstore.OpPut, func(string) error {
		select {
		case <-entered:
		default:
			close(entered)
		}
		<-release.C()
		return nil
	})
	c := dialRaw(t, a)
	produce := c.send(produceReq("pipelined", -1, map[int32][]byte{0: valueBatch(-1, -1, -1, nil, "p")}), produceVersion)
	waitChan(t, "the PUT", entered)
	c.send(fetchReq("pipelined", 30_000, 1, 1<<20, fetchPart{1, 0, 1 << 20}), fetchVersion)
	waitFor(t, "the fetch to wait at the log end", func() bool { return goroutinesIn("(*Agent).handleFetch", "waitAny") == 1 })
	release.open()

	type result struct {
		p   kmsg.ProduceResponseTopicPartition
		err error
	}
	got := make(chan result, 1)
	go func() {
		resp := kmsg.NewPtrProduceResponse()
		resp.Version = produceVersion
		corr, err := c.recvErr(resp)
		if err == nil && corr != produce {
			err = fmt.Errorf("correlation id %d, want %d", corr, produce)
		}
		var p kmsg.ProduceResponseTopicPartition
		if err == nil {
			p = resp.Topics[0].Partitions[0]
		}
		got <- result{p, err}
	}()
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatal(r.err)
		}
		wantOK(t, "produce", r.p.ErrorCode)
	case <-time.After(5 * time.Second): // the fetch behind it waits 30 s
		t.Fatal("the produce acknowledgement is held back behind the long-polling fetch")
	}
}
