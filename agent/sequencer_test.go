package agent

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamhouse/streamhouse/agent/internal/kwire"
	"github.com/streamhouse/streamhouse/coord"
)

func TestCheckSequence(t *testing.T) {
	state := &coord.ProducerState{ID: 1, Epoch: 2, Batches: []coord.SeqBatch{
		{FirstSeq: 0, LastSeq: 4, FirstOffset: 10, LastOffset: 14},
		{FirstSeq: 5, LastSeq: 9, FirstOffset: 20, LastOffset: 24},
	}}
	meta := func(epoch int16, seq, n int32) kwire.BatchMeta {
		return kwire.BatchMeta{Records: n, ProducerID: 1, ProducerEpoch: epoch, BaseSequence: seq}
	}
	for name, tc := range map[string]struct {
		prev    *coord.ProducerState
		m       kwire.BatchMeta
		dup     int64
		wantErr error
	}{
		"new producer":       {nil, meta(0, 0, 3), -1, nil},
		"next in sequence":   {state, meta(2, 10, 1), -1, nil},
		"duplicate of last":  {state, meta(2, 5, 5), 20, nil},
		"duplicate of older": {state, meta(2, 0, 5), 10, nil},
		"gap":                {state, meta(2, 12, 1), -1, kerr.OutOfOrderSequenceNumber},
		"overlap":            {state, meta(2, 7, 5), -1, kerr.OutOfOrderSequenceNumber},
		"old epoch":          {state, meta(1, 10, 1), -1, kerr.InvalidProducerEpoch},
		"new epoch from 0":   {state, meta(3, 0, 1), -1, nil},
		"new epoch not 0":    {state, meta(3, 4, 1), -1, kerr.OutOfOrderSequenceNumber},
	} {
		dup, err := checkSequence(tc.prev, tc.m)
		if dup != tc.dup || !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: got (%d, %v), want (%d, %v)", name, dup, err, tc.dup, tc.wantErr)
		}
	}
}

func TestSequenceWrapsAtMaxInt32(t *testing.T) {
	prev := &coord.ProducerState{ID: 1, Batches: []coord.SeqBatch{{FirstSeq: 1<<31 - 3, LastSeq: 1<<31 - 1}}}
	if dup, err := checkSequence(prev, kwire.BatchMeta{Records: 2, ProducerID: 1, BaseSequence: 0}); dup != -1 || err != nil {
		t.Fatalf("wrapped sequence refused: %d %v", dup, err)
	}
	if got := (kwire.BatchMeta{Records: 3, BaseSequence: 1<<31 - 1}).LastSequence(); got != 1 {
		t.Fatalf("last sequence %d, want 1", got)
	}
}

func TestRecordSequenceKeepsLastFive(t *testing.T) {
	var st *coord.ProducerState
	for i := range int32(8) {
		next := recordSequence(st, kwire.BatchMeta{Records: 1, ProducerID: 1, BaseSequence: i}, int64(100+i), time.Now())
		st = &next
	}
	if len(st.Batches) != coord.MaxProducerBatches || st.Batches[0].FirstSeq != 3 || st.Batches[4].FirstOffset != 107 {
		t.Fatalf("state %+v", st.Batches)
	}
}
