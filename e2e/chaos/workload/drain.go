package workload

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamhouse/streamhouse/e2e/chaos/history"
)

// Drain reads every partition from the start to its log end with a fresh consumer, after the
// traffic stopped: the final read that tells lost and unseen records apart. It records each
// partition's log end offset and the polls. It returns how many records it read.
func (w *Workload) Drain(ctx context.Context) (int, error) {
	ends, err := w.endOffsets(ctx)
	if err != nil {
		return 0, err
	}
	offsets := map[string]map[int32]kgo.Offset{}
	for _, tp := range w.tps {
		if offsets[tp.Topic] == nil {
			offsets[tp.Topic] = map[int32]kgo.Offset{}
		}
		offsets[tp.Topic][tp.Partition] = kgo.NewOffset().AtStart()
	}
	cl, err := w.client("drain", kgo.ConsumePartitions(offsets), kgo.FetchMaxWait(fetchMaxWait))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	next := map[history.TP]int64{}
	var fetchErrors atomic.Int64
	n := 0
	for {
		if missing := unfinished(w.tps, ends, next); len(missing) == 0 {
			return n, nil
		} else if ctx.Err() != nil {
			return n, fmt.Errorf("drain: %d partitions not read to their end, e.g. %v at %d of %d (%d fetch errors): %w",
				len(missing), missing[0], next[missing[0]], ends[missing[0]], fetchErrors.Load(), ctx.Err())
		}
		for _, r := range pollOnce(ctx, w.cfg.Recorder, cl, "drain", 1, &fetchErrors) {
			tp := history.TP{Topic: r.Topic, Partition: r.Partition}
			next[tp] = max(next[tp], r.Offset+1)
			n++
		}
	}
}

func unfinished(tps []history.TP, ends, next map[history.TP]int64) []history.TP {
	var out []history.TP
	for _, tp := range tps {
		if next[tp] < ends[tp] {
			out = append(out, tp)
		}
	}
	return out
}

// endOffsets lists and records every partition's log end offset, retrying until ctx ends.
func (w *Workload) endOffsets(ctx context.Context) (map[history.TP]int64, error) {
	cl, err := w.client("drain-admin")
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		start := time.Now()
		listed, err := adm.ListEndOffsets(ctx, w.cfg.Topics...)
		end := time.Now()
		if err == nil {
			err = listed.Error()
		}
		if err == nil {
			ends := map[history.TP]int64{}
			listed.Each(func(o kadm.ListedOffset) {
				tp := history.TP{Topic: o.Topic, Partition: o.Partition}
				ends[tp] = o.Offset
				w.cfg.Recorder.Add(history.Event{Type: history.End, Start: start, End: end, Outcome: history.OK,
					Topic: o.Topic, Partition: o.Partition, Offset: o.Offset})
			})
			return ends, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("drain: list end offsets: %w", err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// ReadCommitted reads back every group's committed offsets and records them, retrying (a coordinator
// moving answers NOT_COORDINATOR for a moment) until ctx ends.
func (w *Workload) ReadCommitted(ctx context.Context) error {
	cl, err := w.client("offsets-reader")
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, g := range Groups {
		if err := readGroupOffsets(ctx, w.cfg.Recorder, adm, g, "offsets-reader"); err != nil {
			return err
		}
	}
	return nil
}

// readGroupOffsets reads back group g's committed offsets and records them as proc, retrying until
// ctx ends.
func readGroupOffsets(ctx context.Context, rec *history.Recorder, adm *kadm.Client, g, proc string) error {
	var resps kadm.OffsetResponses
	var start, end time.Time
	for {
		var err error
		start = time.Now()
		resps, err = adm.FetchOffsets(ctx, g)
		end = time.Now()
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("fetch offsets of %s: %w", g, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
	var events []history.Event
	resps.Each(func(o kadm.OffsetResponse) {
		if o.Err != nil || o.At < 0 {
			return
		}
		events = append(events, history.Event{Type: history.Committed, Proc: proc, Group: g,
			Start: start, End: end, Outcome: history.OK, Topic: o.Topic, Partition: o.Partition, Offset: o.At})
	})
	sort.Slice(events, func(i, j int) bool {
		return events[i].Topic < events[j].Topic || events[i].Topic == events[j].Topic && events[i].Partition < events[j].Partition
	})
	for _, e := range events {
		rec.Add(e)
	}
	return nil
}
