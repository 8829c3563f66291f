package workload

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

func TestSendOutcome(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want history.Outcome
	}{
		{nil, history.OK},
		{context.DeadlineExceeded, history.Failed},
		{fmt.Errorf("wrapped: %w", context.Canceled), history.Failed},
		{kgo.ErrRecordTimeout, history.Failed},
		{kgo.ErrRecordRetries, history.Failed},
		{kerr.MessageTooLarge, history.Failed},
		{kgo.ErrClientClosed, history.Indeterminate},
		{kerr.OutOfOrderSequenceNumber, history.Indeterminate},
		{kerr.NotLeaderForPartition, history.Indeterminate},
		{errors.New("connection reset"), history.Indeterminate},
	} {
		if got := sendOutcome(tc.err); got != tc.want {
			t.Errorf("sendOutcome(%v) = %s, want %s", tc.err, got, tc.want)
		}
	}
}

func TestAckTrackerWaitsForEveryPartition(t *testing.T) {
	tr := newAckTracker()
	a, b := history.TP{Topic: "t", Partition: 0}, history.TP{Topic: "t", Partition: 1}
	since := time.Now()
	tr.ack(a, since.Add(-time.Second)) // before since: does not count
	done := make(chan error, 1)
	go func() { done <- tr.waitAll(context.Background(), []history.TP{a, b}, since) }()
	tr.ack(a, since.Add(time.Millisecond))
	select {
	case err := <-done:
		t.Fatalf("waitAll returned (%v) with partition 1 behind", err)
	default:
	}
	tr.ack(b, since.Add(time.Millisecond))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tr.waitAll(ctx, []history.TP{a, b}, since.Add(time.Hour)); err == nil {
		t.Error("waitAll with nothing acknowledged after since and a cancelled context: no error")
	}
}

// A transaction is committed only when its commit was answered without error, certainly aborted
// only when no commit was sent; anything else is indeterminate, so that the checker accepts either
// outcome (all or nothing).
func TestTxnOutcome(t *testing.T) {
	t.Parallel()
	gone := errors.New("connection reset")
	for _, tc := range []struct {
		commit bool
		err    error
		want   history.Outcome
	}{
		{true, nil, history.OK},
		{true, gone, history.Indeterminate},
		{true, kerr.OperationNotAttempted, history.Indeterminate},
		{false, nil, history.Failed},
		{false, kerr.ProducerFenced, history.Failed},
	} {
		if got := txnOutcome(tc.commit, tc.err); got != tc.want {
			t.Errorf("txnOutcome(commit %v, %v) = %s, want %s", tc.commit, tc.err, got, tc.want)
		}
	}
	for _, tc := range []struct {
		abort, committed bool
		err              error
		want             history.Outcome
	}{
		{false, true, nil, history.OK},
		{false, false, nil, history.Indeterminate}, // franz-go's answer to an unconfirmed commit
		{false, false, gone, history.Indeterminate},
		{true, false, nil, history.Failed},
		{true, false, gone, history.Failed},
	} {
		if got := ctpOutcome(tc.abort, tc.committed, tc.err); got != tc.want {
			t.Errorf("ctpOutcome(abort %v, committed %v, %v) = %s, want %s", tc.abort, tc.committed, tc.err, got, tc.want)
		}
	}
}
